import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/**
 * Proofs seen by every node sharing the database, so that a registration or history proof used on one
 * node is refused on the others. Optional: alone, the node's own `ReplayGuard` is the whole record.
 */
export class SeenProofs extends Context.Tag("im/SeenProofs")<SeenProofs, {
  /** True the first time `id` is claimed before `expiry` (ms); false for a replay; fails when the store does not answer. */
  readonly claim: (id: string, expiry: number) => Effect.Effect<boolean, unknown>
}>() {}
