import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

const restartDelays = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))

/**
 * A background loop of a client that restarts after a failure or defect (logged) instead of ending for
 * good, leaving its peer without acknowledgements, events or reconnection. It ends when it returns or is
 * interrupted. The node has its own (`src/internal/supervise.ts`): the client library ships without it.
 */
export const supervised = <E, R>(name: string, loop: Effect.Effect<unknown, E, R>): Effect.Effect<void, never, R> =>
  loop.pipe(
    Effect.sandbox,
    Effect.tapError((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(`client loop ${name} failed, restarting`, cause)
    ),
    Effect.retry({ schedule: restartDelays, while: (cause) => !Cause.isInterruptedOnly(cause) }),
    Effect.ignore,
    Effect.annotateLogs({ loop: name })
  )

/** `supervised`, run in the current scope. */
export const supervise = <E, R>(name: string, loop: Effect.Effect<unknown, E, R>): Effect.Effect<void, never, R | Scope.Scope> =>
  Effect.asVoid(Effect.forkScoped(supervised(name, loop)))
