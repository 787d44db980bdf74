import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** Message timestamps: strictly increasing per node, so paging by `before` never skips or repeats. */
export class ServerClock extends Context.Tag("im/ServerClock")<ServerClock, {
  readonly next: Effect.Effect<number>
  /** `next` from plain code, given the current time (a send accepted in the connection's callback). */
  readonly nextAt: (now: number) => number
}>() {}

export const layer: Layer.Layer<ServerClock> = Layer.sync(ServerClock, () => {
  let last = 0
  const nextAt = (now: number) => {
    last = now > last ? now : last + 1
    return last
  }
  return { next: Effect.map(Clock.currentTimeMillis, nextAt), nextAt }
})
