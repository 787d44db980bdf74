import { Chunk, Effect, Layer, TestClock, TestServices } from "effect"
import { PipelineStore, type PipelineStoreShape } from "../../src/l2ps/PipelineStore.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"

/**
 * What lets a pipeline test wait for the pipeline instead of for the wall clock: every call of its
 * store (the SQL one) is recorded as it ends, and `until` re-checks a condition each time one ends; live
 * time only bounds the wait, so that a broken pipeline fails the test instead of hanging it.
 */
export const makePipelineSignals = () => {
  /** Calls ended, by method (`batches` by method and status, e.g. `batches:submitted`). */
  const calls = new Map<string, number>()
  let ended = 0
  const waiters = new Set<() => void>()
  const record = (name: string) => {
    calls.set(name, (calls.get(name) ?? 0) + 1)
    ended++
    for (const wake of waiters) wake()
    waiters.clear()
  }
  /** Completes once a call ended after `seen` had. */
  const endedAfter = (seen: number) =>
    Effect.async<void>((resume) => {
      if (ended > seen) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.add(wake)
      return Effect.sync(() => waiters.delete(wake))
    })

  const layer = Layer.effect(
    PipelineStore,
    Effect.map(SqlPipelineStore.make, (store): PipelineStoreShape => {
      const watched: Record<string, unknown> = { ...store }
      for (const [name, member] of Object.entries(store)) {
        if (typeof member !== "function") continue
        watched[name] = (...args: Array<unknown>) =>
          Effect.ensuring(
            (member as (...a: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args),
            Effect.sync(() => record(name === "batches" ? `batches:${String(args[1])}` : name))
          )
      }
      return watched as unknown as PipelineStoreShape
    })
  )

  /** Waits until `cond` holds, checking it again each time a store call ends; fails after `ms` of live time. */
  const until = <E, R>(what: string, cond: Effect.Effect<boolean, E, R>, ms = 5000) =>
    Effect.gen(function*() {
      while (true) {
        const seen = ended
        if (yield* cond) return
        const moved = yield* TestServices.provideLive(Effect.timeout(endedAfter(seen), ms)).pipe(Effect.option)
        if (moved._tag === "None") return yield* Effect.die(new Error(`not within ${ms} ms: ${what}`))
      }
    })

  /** How many calls of `name` ended so far. */
  const count = (name: string) => calls.get(name) ?? 0

  return {
    layer,
    until,
    count,
    /** Records a call of another fake (e.g. the test L1), so that `until` checks again. */
    record
  }
}

/**
 * Waits until `n` fibers sleep until `at` on the TestClock, or `done` holds: stages that set their
 * deadline there (a batcher that saw its first message; the L1 and the finality stage gone back to
 * sleep after a block). Moving the clock before that would move it past deadlines not set yet. The
 * clock's list keeps interrupted sleeps too: `at` must be a time only the awaited stages sleep until.
 * Fails after `ms` of live time.
 */
export const sleepingUntil = (at: number, n = 1, done: () => boolean = () => false, ms = 5000) =>
  Effect.gen(function*() {
    const until = Date.now() + ms
    while (!done() && Chunk.size(Chunk.filter(yield* TestClock.sleeps(), (t) => t === at)) < n) {
      if (Date.now() > until) return yield* Effect.die(new Error(`not ${n} fibers sleeping until ${at} within ${ms} ms`))
      yield* Effect.yieldNow()
    }
  })
