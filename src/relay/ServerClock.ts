import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** Message timestamps: strictly increasing per node, so paging by `before` never skips or repeats. */
export class ServerClock extends Context.Tag("im/ServerClock")<ServerClock, {
  readonly next: Effect.Effect<number>
}>() {}

export const layer: Layer.Layer<ServerClock> = Layer.sync(ServerClock, () => {
  let last = 0
  return {
    next: Effect.map(Clock.currentTimeMillis, (now) => {
      last = now > last ? now : last + 1
      return last
    })
  }
})
