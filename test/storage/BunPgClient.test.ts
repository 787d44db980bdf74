import { expect, test } from "bun:test"
import { Chunk, Effect, Fiber, TestClock, TestContext, TestServices } from "effect"
import { closePool } from "../../src/storage/BunPgClient.ts"

test("a pool whose close never returns (a hung database) is released after 2 s all the same: the scope closes", () =>
  Effect.gen(function*() {
    let closing = 0
    const hung = { close: () => (closing++, new Promise<void>(() => {})) }
    // As in the client's layer: the pool's release is a finalizer, which runs uninterruptibly.
    const stopped = yield* Effect.forkDaemon(Effect.scoped(Effect.acquireRelease(Effect.succeed(hung), closePool)))
    while (!Chunk.some(yield* TestClock.sleeps(), (at) => at === 2000)) yield* Effect.yieldNow()
    expect(closing).toBe(1)
    yield* TestClock.adjust("2 seconds")
    // Live time bounds the wait, so that the test fails rather than hangs without the fix.
    const exit = yield* TestServices.provideLive(Fiber.await(stopped).pipe(Effect.timeout("2 seconds")))
    expect(exit._tag).toBe("Success")
  }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))
