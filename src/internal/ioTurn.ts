import * as Effect from "effect/Effect"

/**
 * Resumes after the event loop has run its pending I/O callbacks (not a timer: no time passes), so that
 * requests already received join the batch about to close.
 */
export const ioTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})
