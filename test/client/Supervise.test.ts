import { expect, test } from "bun:test"
import { Chunk, Clock, Deferred, Effect, Fiber, Logger, TestClock, TestContext } from "effect"
import { supervise, supervised } from "../../src/client/internal/supervise.ts"

const capture = () => {
  const logged: Array<string> = []
  const logger = Logger.make(({ message }) => void logged.push(String(Array.isArray(message) ? message[0] : message)))
  return { logged, layer: Logger.replace(Logger.defaultLogger, logger) }
}

test("a client loop that dies is logged and restarted 200 ms later, instead of leaving its peer without it", () =>
  Effect.gen(function*() {
    const { logged, layer } = capture()
    const restarted = yield* Deferred.make<void>()
    let runs = 0
    const loop = Effect.gen(function*() {
      runs++
      if (runs === 1) return yield* Effect.die(new Error("bug"))
      yield* Deferred.succeed(restarted, undefined)
      return yield* Effect.never
    })
    yield* Effect.scoped(Effect.gen(function*() {
      const t = yield* Clock.currentTimeMillis
      yield* supervise("acks", loop)
      while (!Chunk.some(yield* TestClock.sleeps(), (at) => at === t + 200)) yield* Effect.yieldNow()
      expect(logged).toEqual(["client loop acks failed, restarting"])
      expect(runs).toBe(1)
      yield* TestClock.adjust(200)
      yield* Deferred.await(restarted)
      expect(runs).toBe(2)
    }).pipe(Effect.provide(layer)))
  }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))

test("a client loop that returns (a peer stopped, out of attempts) is not restarted; an interrupted one stops quietly", () =>
  Effect.gen(function*() {
    const { logged, layer } = capture()
    let runs = 0
    yield* supervised("reconnect", Effect.sync(() => runs++)).pipe(Effect.provide(layer))
    expect(runs).toBe(1)
    const fiber = yield* Effect.fork(supervised("events", Effect.never).pipe(Effect.provide(layer)))
    yield* Effect.yieldNow()
    yield* Fiber.interrupt(fiber)
    expect(logged).toEqual([])
    expect(yield* TestClock.sleeps()).toEqual(Chunk.empty())
  }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))
