import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/**
 * `alive`: it holds its node lock and its heartbeat is recent; `stale`: it holds the lock but has not
 * beaten for a while (frozen, or its database link hangs); `gone`: its lock is free, it is not running.
 */
export type MemberState = "alive" | "stale" | "gone"

/** One node that ever joined the cluster, as its heartbeat row and the database's locks describe it. */
export interface Member {
  readonly nodeId: string
  readonly state: MemberState
  readonly startedAt: number
  readonly heartbeatAt: number
  readonly heartbeatAgeSeconds: number
  /** What the node reported last (null until its first report, or from an older node). */
  readonly host: string | null
  readonly version: string | null
  readonly ports: { readonly l2ps: number; readonly legacy: number; readonly admin: number } | null
  readonly sessions: number | null
  /** Jobs whose lock it holds now, with their fencing epochs, e.g. `pipeline/default#3`. */
  readonly owned: ReadonlyArray<string>
}

/** What this node says of itself in its row, every few seconds. */
export interface MemberReport {
  readonly host: string
  readonly version: string
  readonly ports: { readonly l2ps: number; readonly legacy: number; readonly admin: number }
  readonly sessions: number
}

/**
 * The nodes sharing this node's database, for the status page and the admin API. Optional: a node
 * alone (no `NATS_URL`) has no members to list.
 */
export class ClusterMembers extends Context.Tag("im/ClusterMembers")<ClusterMembers, {
  /** Every node that ever joined, by id; fails when the database does not answer. */
  readonly list: Effect.Effect<ReadonlyArray<Member>, unknown>
  /** Writes this node's report into its heartbeat row (made by its first heartbeat). */
  readonly report: (r: MemberReport) => Effect.Effect<void, unknown>
}>() {}
