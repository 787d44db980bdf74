/**
 * Finding 1 of the security review, at the group commit: a batch the database refuses for one member's
 * data is committed again in halves, then singly, so only that member fails (with pair limits and
 * duplicates counted as if the batch had been sent in order), while a failure of the database itself
 * fails the batch at once, and a batch of offenders costs a bounded number of commits.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Exit, Layer } from "effect"
import * as BatchWakeups from "../../src/l2ps/BatchWakeups.ts"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as CommitterModule from "../../src/relay/Committer.ts"
import { Committer, REFUSED_BY_STORAGE, SPLIT_COMMITS } from "../../src/relay/Committer.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import {
  type CommitRequest,
  type CommitResult,
  type NewMessage,
  Storage,
  StorageError,
  type StorageShape
} from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const C = "c".repeat(64)
/** A key Postgres `text` cannot hold (22021): the storage's own checks do not look at keys, the database does. */
const UNSTORABLE = "d".repeat(63) + "\u0000"

let seq = 0
const request = (over: Partial<NewMessage> = {}, pairLimit = 200): CommitRequest => {
  const n = ++seq
  return {
    pairLimit,
    message: {
      l2psUid: "net",
      from: A,
      to: B,
      messageHash: `split-${n}-${Math.random()}`,
      encryptedJson: JSON.stringify({ ciphertext: "Y2lwaGVy", nonce: "bm9uY2U=" }),
      timestamp: 1_000 + n,
      deliveryStatus: "delivered",
      awaitingAck: false,
      outcome: "sent",
      ...over
    }
  }
}

type Outcome = Exit.Exit<CommitResult, StorageError>

/** Submits every request in one go (they make one batch) and returns their outcomes in completion order. */
const commitAll = (requests: ReadonlyArray<CommitRequest>) =>
  Effect.gen(function*() {
    const committer = yield* Committer
    const done: Array<{ readonly hash: string; readonly outcome: Outcome }> = []
    yield* Effect.sync(() => {
      for (const r of requests) {
        const queued = committer.unsafeSubmit(r, (outcome) => {
          done.push({ hash: r.message.messageHash, outcome })
          return undefined
        })
        if (!queued) throw new Error("commit queue full")
      }
    })
    while (done.length < requests.length) yield* Effect.sleep("2 millis")
    // Each request completed once, in submission order.
    expect(done.map((d) => d.hash)).toEqual(requests.map((r) => r.message.messageHash))
    return done.map((d) => d.outcome)
  })

const resultOf = (o: Outcome): CommitResult | string =>
  Exit.isSuccess(o) ? o.value : "failed"

for (const db of await databases()) {
  const run = <A, E>(body: Effect.Effect<A, E, Committer | SqlClient.SqlClient>) => {
    const storage = SqlStorage.layer.pipe(Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer))))
    const layer = CommitterModule.layer.pipe(
      Layer.provideMerge(Layer.mergeAll(storage, NodeConfig.layer({ commitBatchMax: 256 }), BatchWakeups.layer))
    )
    return Effect.runPromise(body.pipe(Effect.provide(layer), Effect.scoped) as Effect.Effect<A, E>)
  }

  describe(`group commit split on ${db.name}`, () => {
    test("one member the database refuses among 40: it alone is refused, the 39 others are stored in submission order", () =>
      run(Effect.gen(function*() {
        const requests = Array.from({ length: 40 }, (_, i) => request(i === 17 ? { to: UNSTORABLE } : {}))
        const outcomes = yield* commitAll(requests)
        outcomes.forEach((o, i) => {
          if (i === 17) expect(resultOf(o)).toEqual({ _tag: "Refused", reason: REFUSED_BY_STORAGE })
          else expect(resultOf(o)).toMatchObject({ _tag: "Stored" })
        })
        // Stored in the order they were sent: ids follow submission order.
        const ids = outcomes.flatMap((o) => (Exit.isSuccess(o) && o.value._tag === "Stored" ? [Number(o.value.id)] : []))
        expect(ids).toEqual([...ids].sort((x, y) => x - y))
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ message_hash: string }>`SELECT message_hash FROM l2ps_messages ORDER BY id`
        expect(rows.map((r) => r.message_hash)).toEqual(requests.filter((_, i) => i !== 17).map((r) => r.message.messageHash))
      })), 60_000)

    test("the parts count pair limits and duplicates in order: pending messages past the limit, a retried hash, an offender between them", () =>
      run(Effect.gen(function*() {
        const queued = { deliveryStatus: "queued", outcome: "queued" } as const
        const requests = [0, 1, 2, 3].map(() => request(queued, 5))
        requests.push(request({ ...queued, to: UNSTORABLE }, 5))
        requests.push(request(queued, 5))
        // A retry of the second message (same sender, same hash), then one past the pair's limit.
        requests.push({ ...requests[1]!, message: { ...requests[1]!.message, timestamp: 9_999 } })
        requests.push(request(queued, 5))
        // Another pair is not affected by A→B's limit.
        requests.push(request({ ...queued, to: C }, 5))
        const outcomes = (yield* commitAll(requests)).map(resultOf)
        expect(outcomes.map((o) => (typeof o === "string" ? o : o._tag))).toEqual([
          "Stored", "Stored", "Stored", "Stored", "Refused", "Stored", "Duplicate", "PairLimit", "Stored"
        ])
        expect(outcomes[6]).toEqual({ _tag: "Duplicate", to: B, outcome: "queued" })
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM l2ps_messages WHERE to_key = ${B}`
        expect(Number(row!.n)).toBe(5)
      })), 60_000)

    test("payloads jsonb refuses, given to storage directly, are refused alone without failing the commit", () =>
      Effect.runPromise(Effect.gen(function*() {
        const s = yield* Storage
        const poisons = ['{"ciphertext":"\\u0000"}', '{"ciphertext":"\\ud800"}', '{"c":1e999999}', '{"c":1e-20000}']
        const batch = [request(), ...poisons.map((encryptedJson) => request({ encryptedJson })), request({ messageHash: "x\u0000" }), request()]
        const results = yield* s.commit(batch)
        expect(results.map((r) => r._tag)).toEqual(["Stored", "Refused", "Refused", "Refused", "Refused", "Refused", "Stored"])
        expect(results[1]).toEqual({ _tag: "Refused", reason: "Encrypted payload cannot be stored: it holds a \\u0000 escape (NUL)" })
      }).pipe(
        Effect.provide(SqlStorage.layer.pipe(Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))))
      )), 60_000)
  })
}

/** A storage that fails a commit holding a member `poisoned` says is bad with `error`, records each commit's size. */
const fakeStorage = (poisoned: (r: CommitRequest) => boolean, error: () => StorageError, sizes: Array<number>) =>
  Layer.succeed(Storage, {
    commit: (batch) =>
      Effect.suspend(() => {
        sizes.push(batch.length)
        return batch.some(poisoned)
          ? Effect.fail(error())
          : Effect.succeed(batch.map((r, i): CommitResult => ({ _tag: "Stored", id: String(i), timestamp: r.message.timestamp })))
      })
  } as Partial<StorageShape> as StorageShape)

const sqlFailure = (state: string) => () =>
  new StorageError({ operation: "commit", cause: new SqlError({ cause: { code: state }, message: "refused" }) })

const runFake = <A, E>(storage: Layer.Layer<Storage>, body: Effect.Effect<A, E, Committer>) =>
  Effect.runPromise(body.pipe(
    Effect.provide(CommitterModule.layer.pipe(
      Layer.provide(Layer.mergeAll(storage, NodeConfig.layer({ commitBatchMax: 2048 }), BatchWakeups.layer))
    )),
    Effect.scoped
  ) as Effect.Effect<A, E>)

describe("group commit split: what is not split", () => {
  test("a failure of the database itself (57P01, connection lost) fails the batch at once, with one commit", async () => {
    for (const failure of [sqlFailure("57P01"), () => new StorageError({ operation: "commit", cause: new Error("connection refused") })]) {
      const sizes: Array<number> = []
      const outcomes = await runFake(fakeStorage(() => true, failure, sizes), commitAll(Array.from({ length: 100 }, () => request())))
      expect(sizes).toEqual([100])
      expect(outcomes.every((o) => Exit.isFailure(o))).toBe(true)
    }
  })

  test(`a batch of 2,000 offenders costs at most ${SPLIT_COMMITS} more commits; one offender in 2,000 is found within them`, async () => {
    const sizes: Array<number> = []
    const all = await runFake(
      fakeStorage(() => true, sqlFailure("22P05"), sizes),
      commitAll(Array.from({ length: 2000 }, () => request()))
    )
    expect(sizes.length).toBeLessThanOrEqual(1 + SPLIT_COMMITS)
    // Whatever the split did not reach fails like a failed commit; nothing is stored.
    expect(all.every((o) => Exit.isFailure(o) || (o.value._tag === "Refused"))).toBe(true)

    const few: Array<number> = []
    const requests = Array.from({ length: 2000 }, () => request())
    const bad = requests[1234]!.message.messageHash
    const one = await runFake(fakeStorage((r) => r.message.messageHash === bad, sqlFailure("22P05"), few), commitAll(requests))
    expect(few.length).toBeLessThanOrEqual(1 + 2 * 11)
    one.forEach((o, i) => expect(resultOf(o)).toMatchObject(i === 1234 ? { _tag: "Refused" } : { _tag: "Stored" }))
  })
})
