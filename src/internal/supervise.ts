import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

const restartDelays = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))

/** Runs a never-ending stage in the current scope; a failure or defect is logged and the stage restarted. */
export const supervise = <E, R>(name: string, stage: Effect.Effect<unknown, E, R>): Effect.Effect<void, never, R | Scope.Scope> =>
  stage.pipe(
    Effect.sandbox,
    Effect.tapError((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(`stage ${name} failed, restarting`, cause)
    ),
    Effect.retry({ schedule: restartDelays, while: (cause) => !Cause.isInterruptedOnly(cause) }),
    Effect.ignore,
    Effect.annotateLogs({ stage: name }),
    Effect.forkScoped,
    Effect.asVoid
  )
