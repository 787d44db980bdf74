/** Finding 3 in storage: a history page bounded in characters is cut in the query, on every database. */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { SAME_MILLI_MAX } from "../../src/domain/Timestamps.ts"
import { page } from "../../src/relay/handlers/History.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import { HISTORY_ROW_OVERHEAD, historyCharsOf, type NewMessage, Storage } from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)

let seq = 0
/** A message whose payload's JSON is `size` characters. */
const msg = (size: number, timestamp: number): NewMessage => {
  const encryptedJson = JSON.stringify({ ciphertext: "x".repeat(size - 30), nonce: "bm9uY2U=" })
  return {
    l2psUid: "net", from: A, to: B, messageHash: `bytes-${++seq}`, encryptedJson, timestamp,
    deliveryStatus: "delivered", awaitingAck: false, outcome: "sent"
  }
}

for (const db of await databases()) {
  const run = <X, E>(body: Effect.Effect<X, E, Storage | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(SqlStorage.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<X, E>
    )

  describe(`history bounded in characters on ${db.name}`, () => {
    test("rows stop one past what fits, so the page knows there is more; a first group of equal timestamps is read whole; none past the end", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        // Thirty messages of 10,000 characters (11,024 each with the overhead), newest at ts 30.
        const n = 30
        yield* s.commit(Array.from({ length: n }, (_, i) => ({ message: msg(10_000, i + 1), pairLimit: 200 })))
        const all = yield* s.history("net", A, B, undefined, n + 1)
        expect(all.length).toBe(n)
        // encrypted::text as stored (jsonb spells it its own way): the same for every row here.
        const each = historyCharsOf(all[0]!)
        expect(each).toBeGreaterThan(10_000 + HISTORY_ROW_OVERHEAD - 40)
        expect(all.every((r) => historyCharsOf(r) === each)).toBe(true)
        const stamps = (rows: ReadonlyArray<{ timestamp: number }>) => rows.map((r) => r.timestamp)
        const newest = (k: number) => Array.from({ length: k }, (_, i) => n - i)
        // Exactly twenty fit: the 21st is read too, to tell that there is more; the 22nd is not read.
        const rows = yield* s.history("net", A, B, undefined, n + 1, 20 * each)
        expect(stamps(rows)).toEqual(newest(21))
        expect([page(rows, n, 20 * each).count, page(rows, n, 20 * each).hasMore]).toEqual([20, true])
        // One character less: nineteen fit, the twentieth tells.
        const tighter = yield* s.history("net", A, B, undefined, n + 1, 20 * each - 1)
        expect(stamps(tighter)).toEqual(newest(20))
        expect([page(tighter, n, 20 * each - 1).count, page(tighter, n, 20 * each - 1).hasMore]).toEqual([19, true])
        // A bound smaller than one message: the rows a first group of equal timestamps may need are read
        // whatever their size (SAME_MILLI_MAX and one more); the page holds the first message alone.
        const tiny = yield* s.history("net", A, B, undefined, n + 1, 1)
        expect(stamps(tiny)).toEqual(newest(SAME_MILLI_MAX + 1))
        expect([page(tiny, n, 1).count, page(tiny, n, 1).hasMore]).toEqual([1, true])
        // The end of the conversation: no more rows, no hasMore.
        const last = yield* s.history("net", A, B, 3, n + 1, 3 * each)
        expect(stamps(last)).toEqual([2, 1])
        expect(page(last, n, 3 * each).hasMore).toBe(false)
      })))
  })
}
