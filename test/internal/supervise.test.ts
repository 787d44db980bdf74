import { expect, test } from "bun:test"
import { Chunk, Clock, Deferred, Effect, Logger, TestClock, TestContext } from "effect"
import { supervise } from "../../src/internal/supervise.ts"

test("a supervised loop that dies is logged and restarted 200 ms later, its state (kept outside it) intact", () =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const logger = Logger.make(({ message }) => void logged.push(String(Array.isArray(message) ? message[0] : message)))
    const done: Array<string> = []
    const restarted = yield* Deferred.make<void>()
    let runs = 0
    const stage = Effect.gen(function*() {
      runs++
      done.push(`run ${runs}`)
      if (runs === 1) return yield* Effect.die(new Error("bug"))
      yield* Deferred.succeed(restarted, undefined)
      return yield* Effect.never
    })
    yield* Effect.scoped(Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      yield* supervise("loop", stage)
      while (!Chunk.some(yield* TestClock.sleeps(), (at) => at === t + 200)) yield* Effect.yieldNow()
      expect(logged).toEqual(["stage loop failed, restarting"])
      expect(runs).toBe(1)
      yield* TestClock.adjust(200)
      yield* Deferred.await(restarted)
      expect(done).toEqual(["run 1", "run 2"])
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
  }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))
