import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/**
 * Epoch quotas counted where every node sharing the database sees them: a node leases a few units
 * of a key's quota at a time from a shared counter, so the nodes together never accept more than the
 * quota. Optional: alone, the node's own count is exact.
 */
export class QuotaLeases extends Context.Tag("im/QuotaLeases")<QuotaLeases, {
  /** Up to `want` units of `key`'s quota for `epoch`; 0 once the cluster has used all of `quota`. */
  readonly lease: (l2psUid: string, key: string, epoch: number, want: number, quota: number) => Effect.Effect<number, unknown>
}>() {}
