import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"

/** Wake-ups for the batchers: the mempool itself is the `l2ps_pending` rows in storage. */
export class Mempool extends Context.Tag("im/Mempool")<Mempool, {
  /** Tells the network's batcher that committed messages wait. */
  readonly wake: (l2psUid: string) => Effect.Effect<void>
  /** Completes once something was committed since the last take. */
  readonly woken: (l2psUid: string) => Effect.Effect<void>
}>() {}

export const layer: Layer.Layer<Mempool> = Layer.sync(Mempool, () => {
  const signals = new Map<string, Queue.Queue<void>>()
  const signal = (uid: string) =>
    Effect.suspend(() => {
      const q = signals.get(uid)
      if (q !== undefined) return Effect.succeed(q)
      return Effect.tap(Queue.sliding<void>(1), (created) => Effect.sync(() => signals.set(uid, created)))
    })
  return {
    wake: (uid) => Effect.flatMap(signal(uid), (q) => Queue.offer(q, undefined)).pipe(Effect.asVoid),
    woken: (uid) => Effect.flatMap(signal(uid), Queue.take)
  }
})
