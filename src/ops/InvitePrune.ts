import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { InviteStore } from "../storage/InviteStore.ts"
import { supervise } from "../internal/supervise.ts"

/** How often expired invite records are deleted. Fetches never serve one meanwhile: they check the expiry. */
export const PRUNE_INTERVAL_MILLIS = 60_000

/** Expired invite records are deleted on the Clock, so that they stop counting against the storage. */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const invites = yield* InviteStore
    const sweep = Effect.gen(function*() {
      const pruned = yield* invites.prune(yield* Clock.currentTimeMillis)
      if (pruned > 0) yield* Effect.logDebug(`deleted ${pruned} expired invite records`)
    }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.logWarning("invite prune sweep failed", Cause.squash(cause))
      )
    )
    yield* supervise("invite-prune", Effect.repeat(sweep, Schedule.spaced(PRUNE_INTERVAL_MILLIS)))
  })
)
