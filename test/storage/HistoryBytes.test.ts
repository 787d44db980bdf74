/** Finding 3 in storage: a history page bounded in characters is cut in the query, on every database. */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
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
    test("rows stop one past what fits, so the page knows there is more; never fewer than two; none past the end", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        // Ten messages of 10,000 characters (11,024 each with the overhead), newest at ts 10.
        yield* s.commit(Array.from({ length: 10 }, (_, i) => ({ message: msg(10_000, i + 1), pairLimit: 200 })))
        const all = yield* s.history("net", A, B, undefined, 11)
        expect(all.length).toBe(10)
        // encrypted::text as stored (jsonb spells it its own way): the same for every row here.
        const each = historyCharsOf(all[0]!)
        expect(each).toBeGreaterThan(10_000 + HISTORY_ROW_OVERHEAD - 40)
        expect(all.every((r) => historyCharsOf(r) === each)).toBe(true)
        // Exactly three fit: the fourth is read too, to tell that there is more; the fifth is not read.
        const rows = yield* s.history("net", A, B, undefined, 11, 3 * each)
        expect(rows.map((r) => r.timestamp)).toEqual([10, 9, 8, 7])
        expect([page(rows, 10, 3 * each).count, page(rows, 10, 3 * each).hasMore]).toEqual([3, true])
        // One character less: two fit, the third tells.
        const tighter = yield* s.history("net", A, B, undefined, 11, 3 * each - 1)
        expect(tighter.map((r) => r.timestamp)).toEqual([10, 9, 8])
        expect([page(tighter, 10, 3 * each - 1).count, page(tighter, 10, 3 * each - 1).hasMore]).toEqual([2, true])
        // A first message larger than the bound comes alone, and the second tells there is more.
        const tiny = yield* s.history("net", A, B, undefined, 11, 1)
        expect(tiny.length).toBe(2)
        expect([page(tiny, 10, 1).count, page(tiny, 10, 1).hasMore]).toEqual([1, true])
        // The end of the conversation: no more rows, no hasMore.
        const last = yield* s.history("net", A, B, 3, 11, 3 * each)
        expect(last.map((r) => r.timestamp)).toEqual([2, 1])
        expect(page(last, 10, 3 * each).hasMore).toBe(false)
      })))
  })
}
