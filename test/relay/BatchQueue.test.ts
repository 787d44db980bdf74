import { expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { BatchQueue } from "../../src/relay/BatchQueue.ts"

const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect)

test("batches are bounded in items and in bytes, in order; a heavy item still goes alone", () =>
  run(Effect.gen(function*() {
    const q = new BatchQueue<number>(100, 1_000, (n) => n)
    for (const n of [100, 200, 300, 400]) yield* q.offer(n)
    expect(q.takeUpTo(10, 650)).toEqual([100, 200, 300])
    expect(q.takeUpTo(10, 100)).toEqual([400]) // heavier than the bound, taken alone
    yield* q.offer(5_000) // into an empty queue, whatever its weight
    expect(q.takeUpTo(10, 10_000)).toEqual([5_000])
    for (const n of [1, 2, 3]) yield* q.offer(n)
    expect(q.takeUpTo(2, 10_000)).toEqual([1, 2])
    expect(q.takeUpTo(10, 10_000)).toEqual([3])
    expect(q.size).toBe(0)
  })))

test("offers wait while the queue is full (items or bytes) and go on once a batch is taken", () =>
  run(Effect.gen(function*() {
    const q = new BatchQueue<number>(3, 100, (n) => n)
    for (const n of [10, 20, 30]) yield* q.offer(n)
    const byCount = yield* Effect.fork(q.offer(1))
    yield* Effect.yieldNow()
    expect(byCount.unsafePoll()).toBeNull()
    expect(q.takeUpTo(1, 100)).toEqual([10])
    yield* Fiber.join(byCount)
    const byBytes = yield* Effect.fork(q.offer(60)) // 20 + 30 + 1 + 60 > 100
    yield* Effect.yieldNow()
    expect(byBytes.unsafePoll()).toBeNull()
    expect(q.takeUpTo(2, 100)).toEqual([20, 30])
    yield* Fiber.join(byBytes)
    expect(q.takeUpTo(10, 1_000)).toEqual([1, 60])
  })))

test("nonEmpty waits for the first offer", () =>
  run(Effect.gen(function*() {
    const q = new BatchQueue<string>(10, 10, () => 1)
    const waiting = yield* Effect.fork(q.nonEmpty)
    yield* Effect.yieldNow()
    expect(waiting.unsafePoll()).toBeNull()
    yield* q.offer("a")
    yield* Fiber.join(waiting)
    expect(q.takeUpTo(10, 10)).toEqual(["a"])
  })))
