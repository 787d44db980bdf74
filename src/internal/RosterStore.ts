import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** One registered session of one node: `sid` is unique within its node's run. */
export interface RosterSession {
  readonly node: string
  readonly sid: number
  readonly l2psUid: string
  readonly key: string
  readonly since: number
}

/** A session the cap put out: it no longer counts, and its node closes it. */
export type RosterEviction = Omit<RosterSession, "since">

/** A key of a network whose cluster-wide online state changed (`online`: its first session came, else its last went). */
export interface RosterTransition {
  readonly l2psUid: string
  readonly key: string
  readonly online: boolean
}

export interface RosterChange {
  readonly transitions: ReadonlyArray<RosterTransition>
  readonly evicted: ReadonlyArray<RosterEviction>
}

export interface AddedSession extends RosterSession {
  /** The key's session cap in its network. */
  readonly cap: number
}

/**
 * The sessions of every node sharing the database, for presence and the session cap across a
 * cluster. Optional: alone, the node's `Peers` is the whole record.
 */
export class RosterStore extends Context.Tag("im/RosterStore")<RosterStore, {
  /**
   * One node's batch in one transaction, serialized per key with the other nodes' batches: `gone`
   * deleted, `added` inserted, then each key with an addition held to its cap by evicting its
   * oldest sessions wherever they are. Returns the keys whose first session came or last went.
   */
  readonly apply: (gone: ReadonlyArray<RosterSession>, added: ReadonlyArray<AddedSession>) => Effect.Effect<RosterChange, unknown>
  /** Every session that counts (not evicted), oldest first, and this node's evicted ones. */
  readonly snapshot: (node: string) => Effect.Effect<{
    readonly sessions: ReadonlyArray<RosterSession>
    readonly evicted: ReadonlyArray<number>
  }, unknown>
  /**
   * Deletes the sessions of the nodes other than `self` that are gone: their lock free (the process
   * or its database connection died), or their heartbeat older than `staleBefore`. `self` purges its
   * own sessions of an earlier run with `only`. Returns what it removed and the keys that left.
   */
  readonly purge: (self: string, staleBefore: number, only?: string) => Effect.Effect<{
    readonly nodes: ReadonlyArray<string>
    readonly removed: ReadonlyArray<RosterSession>
    readonly transitions: ReadonlyArray<RosterTransition>
  }, unknown>
}>() {}
