import { expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import * as PendingProbe from "../../src/relay/PendingProbe.ts"
import { Storage, StorageError, type StorageShape } from "../../src/storage/Storage.ts"

/** Storage that only answers `waiting`: keys starting with "q" have messages waiting; calls are recorded. */
const probedStorage = (calls: Array<number>, fail = false) =>
  Layer.succeed(Storage, {
    waiting: (recipients) =>
      Effect.suspend(() => {
        calls.push(recipients.length)
        return fail
          ? Effect.fail(new StorageError({ operation: "waiting", cause: "down" }))
          : Effect.succeed(recipients.map((r) => r.to.startsWith("q")))
      })
  } as Partial<StorageShape> as StorageShape)

const ask = (n: number, calls: Array<number>, fail = false) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const probe = yield* PendingProbe.PendingProbe
      return yield* Effect.forEach(
        Array.from({ length: n }, (_, i) => (i % 3 === 0 ? `q${i}` : `k${i}`)),
        (to) => Effect.either(probe.hasWaiting("net", to)),
        { concurrency: "unbounded" }
      )
    }).pipe(Effect.provide(PendingProbe.layer.pipe(Layer.provide(probedStorage(calls, fail)))), Effect.scoped)
  )

test("registrations asking at once share a query, each gets its own answer", async () => {
  const calls: Array<number> = []
  const answers = await ask(2500, calls)
  expect(answers.map((a) => a._tag === "Right" && a.right)).toEqual(Array.from({ length: 2500 }, (_, i) => i % 3 === 0))
  // At most 1,000 recipients per query; 2,500 asks in one turn take three.
  expect(calls).toEqual([1000, 1000, 500])
})

test("a failed query fails every ask of its batch, and the probe goes on", async () => {
  const calls: Array<number> = []
  const failed = await ask(10, calls, true)
  expect(failed.every((a) => a._tag === "Left" && a.left.operation === "waiting")).toBe(true)
  const ok = await ask(10, calls)
  expect(ok.every((a) => a._tag === "Right")).toBe(true)
})

test("a query that dies (thrown or as a defect) fails its asks with a storage error, and later asks are answered", async () => {
  for (const dies of ["throws", "defect"] as const) {
    let calls = 0
    const storage = Layer.succeed(Storage, {
      waiting: (recipients) => {
        if (++calls === 1) {
          if (dies === "throws") throw new Error("driver bug")
          return Effect.die(new Error("connection lost"))
        }
        return Effect.succeed(recipients.map(() => true))
      }
    } as Partial<StorageShape> as StorageShape)
    const [first, second] = await Effect.runPromise(
      Effect.gen(function*() {
        const probe = yield* PendingProbe.PendingProbe
        const first = yield* Effect.either(probe.hasWaiting("net", "k1")).pipe(Effect.timeout("2 seconds"))
        const second = yield* Effect.either(probe.hasWaiting("net", "k2")).pipe(Effect.timeout("2 seconds"))
        return [first, second] as const
      }).pipe(Effect.provide(PendingProbe.layer.pipe(Layer.provide(storage))), Effect.scoped)
    )
    expect(first._tag === "Left" && first.left.operation).toBe("waiting")
    expect(second._tag === "Right" && second.right).toBe(true)
  }
})
