import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"

/**
 * Wake-ups for the batchers, per network: a commit wakes its network's batcher instead of the batcher
 * polling storage. The mempool itself is the `l2ps_mempool` rows in storage; this holds only counts.
 */
export class BatchWakeups extends Context.Tag("im/BatchWakeups")<BatchWakeups, {
  /** Tells the network's batcher that `count` more committed messages wait. */
  readonly wake: (l2psUid: string, count: number) => Effect.Effect<void>
  /**
   * Completes once something was committed since the last take, with how many messages (so that the
   * batcher need not count them in storage after every commit). Interrupted, it takes nothing.
   */
  readonly woken: (l2psUid: string) => Effect.Effect<number>
}>() {}

interface Signal {
  count: number
  waiter: Deferred.Deferred<void> | undefined
}

export const layer: Layer.Layer<BatchWakeups> = Layer.sync(BatchWakeups, () => {
  // One entry per network that has had a batcher or a commit: bounded by the configured networks.
  const signals = new Map<string, Signal>()
  const signal = (uid: string) => {
    let s = signals.get(uid)
    if (s === undefined) signals.set(uid, s = { count: 0, waiter: undefined })
    return s
  }
  return {
    wake: (uid, count) =>
      Effect.sync(() => {
        const s = signal(uid)
        s.count += count
        if (s.waiter !== undefined) {
          Deferred.unsafeDone(s.waiter, Exit.void)
          s.waiter = undefined
        }
      }),
    woken: (uid) =>
      Effect.suspend(function take(): Effect.Effect<number> {
        const s = signal(uid)
        if (s.count > 0) {
          const n = s.count
          s.count = 0
          return Effect.succeed(n)
        }
        s.waiter ??= Deferred.unsafeMake<void>(FiberId.none)
        return Effect.zipRight(Deferred.await(s.waiter), Effect.suspend(take))
      })
  }
})
