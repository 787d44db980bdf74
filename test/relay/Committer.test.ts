import { expect, test } from "bun:test"
import { Chunk, Clock, Context, Deferred, Effect, Exit, Fiber, Layer, Scope, TestClock, TestContext, TestServices } from "effect"
import * as BatchWakeups from "../../src/l2ps/BatchWakeups.ts"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as CommitterModule from "../../src/relay/Committer.ts"
import { Committer } from "../../src/relay/Committer.ts"
import { type CommitRequest, type NewMessage, Storage, type StorageShape } from "../../src/storage/Storage.ts"

let seq = 0
const request = (pending = false): CommitRequest => {
  const n = ++seq
  const message: NewMessage = {
    l2psUid: "net",
    from: "a".repeat(64),
    to: "b".repeat(64),
    messageHash: `h${n}`,
    encryptedJson: JSON.stringify({ ciphertext: "c", nonce: "n" }),
    timestamp: n,
    ...(pending
      ? { deliveryStatus: "queued", awaitingAck: false, outcome: "queued" }
      : { deliveryStatus: "delivered", awaitingAck: false, outcome: "sent" })
  }
  return { message, pairLimit: 10 }
}

/** A storage whose first commit waits for `gate`; it records the hashes of each commit as it starts. */
const gatedStorage = (gate: Deferred.Deferred<void>, started: Array<Array<string>>) =>
  Layer.succeed(Storage, {
    commit: (batch) =>
      Effect.suspend(() => {
        started.push(batch.map((r) => r.message.messageHash))
        const results = batch.map((r, i) => ({ _tag: "Stored" as const, id: String(i), timestamp: r.message.timestamp }))
        return started.length === 1 ? Effect.as(Deferred.await(gate), results) : Effect.succeed(results)
      })
  } as Partial<StorageShape> as StorageShape)

test("two commits in flight under a backlog complete in submission order; a batch of pending messages waits for both", () =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const started: Array<Array<string>> = []
    const completed: Array<string> = []
    const layer = CommitterModule.layer.pipe(
      Layer.provide(Layer.mergeAll(gatedStorage(gate, started), NodeConfig.layer({ commitBatchMax: 4 }), BatchWakeups.layer))
    )
    yield* Effect.gen(function*() {
      const committer = yield* Committer
      const submit = (r: CommitRequest) =>
        committer.submit(r, (outcome) => {
          expect(Exit.isSuccess(outcome)).toBe(true)
          completed.push(r.message.messageHash)
          return undefined
        })
      const first = [request(), request(), request(), request()]
      for (const r of first) yield* submit(r)
      while (started.length < 1) yield* Effect.sleep("1 millis")
      // A backlog (a full batch) is written beside the commit in flight…
      const second = [request(), request(), request(), request()]
      for (const r of second) yield* submit(r)
      while (started.length < 2) yield* Effect.sleep("1 millis")
      // …but completes after it: nothing of the second batch is answered while the first waits.
      const pending = request(true)
      yield* submit(pending)
      yield* Effect.sleep("30 millis")
      expect(completed).toEqual([])
      // The pending message's batch (pair limits) does not start beside them.
      expect(started.length).toBe(2)
      yield* Deferred.succeed(gate, undefined)
      while (completed.length < 9) yield* Effect.sleep("1 millis")
      expect(completed).toEqual([...first, ...second, pending].map((r) => r.message.messageHash))
      expect(started).toEqual([first, second, [pending]].map((b) => b.map((r) => r.message.messageHash)))
    }).pipe(Effect.provide(layer), Effect.scoped)
  }).pipe(Effect.runPromise))

test("a commit that dies (thrown or as a defect) fails its own sends only; later sends are stored", () =>
  Effect.gen(function*() {
    for (const dies of ["throws", "defect"] as const) {
      let calls = 0
      const storage = Layer.succeed(Storage, {
        commit: (batch) => {
          if (++calls === 1) {
            if (dies === "throws") throw new Error("driver bug")
            return Effect.die(new Error("COMMIT lost with the connection"))
          }
          return Effect.succeed(batch.map((r, i) => ({ _tag: "Stored" as const, id: String(i), timestamp: r.message.timestamp })))
        }
      } as Partial<StorageShape> as StorageShape)
      const layer = CommitterModule.layer.pipe(
        Layer.provide(Layer.mergeAll(storage, NodeConfig.layer({ commitBatchMax: 4 }), BatchWakeups.layer))
      )
      yield* Effect.gen(function*() {
        const committer = yield* Committer
        const send = Effect.gen(function*() {
          const done = yield* Deferred.make<Exit.Exit<unknown, unknown>>()
          yield* committer.submit(request(), (outcome) => {
            Deferred.unsafeDone(done, Exit.succeed(outcome))
            return undefined
          })
          // Without an answer the sender would wait forever: bounded here so the test fails instead.
          return yield* Deferred.await(done).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "no answer" }))
        })
        const first = yield* send
        expect(Exit.isFailure(first)).toBe(true)
        for (let i = 0; i < 3; i++) {
          const later = yield* send
          expect(Exit.isSuccess(later) && later.value).toMatchObject({ _tag: "Stored", id: "0" })
        }
      }).pipe(Effect.provide(layer), Effect.scoped)
    }
  }).pipe(Effect.runPromise))

test("stopping while a commit hangs (a database that does not answer) waits 10 s for it, then stops all the same", () =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const hung = Layer.succeed(Storage, {
      commit: () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
    } as Partial<StorageShape> as StorageShape)
    const layer = CommitterModule.layer.pipe(
      Layer.provide(Layer.mergeAll(hung, NodeConfig.layer({ commitBatchMax: 4 }), BatchWakeups.layer))
    )
    const scope = yield* Scope.make()
    const committer = yield* Layer.buildWithScope(layer, scope).pipe(Effect.map(Context.get(Committer)))
    yield* committer.submit(request(), () => undefined)
    yield* Deferred.await(started)
    // Another send waits in the queue behind the hung commit: stopping hands it to storage too.
    yield* committer.submit(request(), () => undefined)
    const t = yield* Clock.currentTimeMillis
    const stopping = yield* Effect.forkDaemon(Scope.close(scope, Exit.void))
    while (!Chunk.some(yield* TestClock.sleeps(), (at) => at === t + 10_000)) yield* Effect.yieldNow()
    yield* TestClock.adjust(9_999)
    expect(stopping.unsafePoll()).toBe(null)
    yield* TestClock.adjust(1)
    // Live time bounds the wait, so that the test fails rather than hangs without the bound.
    const stopped = yield* TestServices.provideLive(Fiber.await(stopping).pipe(Effect.timeout("2 seconds"), Effect.option))
    expect(stopped._tag).toBe("Some")
  }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise))
