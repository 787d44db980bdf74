import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { type NewBatch, PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import { type NewMessage, Storage } from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)

let n = 0
const msg = (l2psUid: string, queued = false): NewMessage => ({
  l2psUid,
  from: A,
  to: B,
  messageHash: `m-${++n}`,
  encryptedJson: JSON.stringify({ ciphertext: `c${n}`, nonce: "bm9uY2U=" }),
  timestamp: 1_000 + n,
  awaitingAck: false,
  ...(queued ? { deliveryStatus: "queued", outcome: "queued" } : { deliveryStatus: "delivered", outcome: "sent" })
})

/** Stand-in leaf hashes: the store keeps what the prover gives it. */
const leavesOf = (ids: ReadonlyArray<string>) => ids.map((id) => id.padStart(64, "0"))

const batch = (l2psUid: string, seq: number, size: number): NewBatch => ({
  l2psUid,
  seq,
  root: "r".repeat(64),
  size,
  prevBatchHash: "0".repeat(64),
  batchHash: `${l2psUid}-${seq}`.padEnd(64, "h"),
  signature: "s",
  l2psTxHash: `${l2psUid}-${seq}`.padEnd(64, "t"),
  createdAt: 5
})

for (const db of await databases()) {
  const run = <A, E>(body: Effect.Effect<A, E, Storage | PipelineStore | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(Layer.mergeAll(SqlStorage.layer, SqlPipelineStore.layer).pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<A, E>
    )

  const stored = (l2psUid: string, count: number, queued = false) =>
    Effect.flatMap(Storage, (s) => s.commit(Array.from({ length: count }, () => ({ message: msg(l2psUid, queued), pairLimit: 100 }))))
      .pipe(Effect.map((rs) => rs.map((r) => (r._tag === "Stored" ? r.id : "?"))))

  describe(`SqlPipelineStore on ${db.name}`, () => {
    test("the mempool: a network's unbatched messages in id order, past a cursor, up to a maximum", () =>
      run(Effect.gen(function*() {
        const store = yield* PipelineStore
        const ids = yield* stored("n1", 5)
        yield* stored("n2", 2)
        const all = yield* store.takePending("n1", undefined, 10)
        expect(all.map((e) => e.id)).toEqual(ids)
        expect(all[0]).toMatchObject({ l2psUid: "n1", messageHash: expect.stringMatching(/^m-/), encrypted: { nonce: "bm9uY2U=" } })
        expect((yield* store.takePending("n1", ids[1], 2)).map((e) => e.id)).toEqual(ids.slice(2, 4))
        expect(yield* store.countPending("n1", undefined, 10)).toBe(5)
        expect(yield* store.countPending("n1", ids[3], 10)).toBe(1)
        expect(yield* store.countPending("n1", undefined, 3)).toBe(3)
        expect(yield* store.countPending("n3", undefined, 3)).toBe(0)
      })))

    test("saving a batch claims its messages; a batch with one already claimed is refused whole", () =>
      run(Effect.gen(function*() {
        const store = yield* PipelineStore
        const sql = yield* SqlClient.SqlClient
        const ids = yield* stored("n1", 4)
        const first = yield* store.saveBatch(batch("n1", 1, 2), ids.slice(0, 2), leavesOf(ids.slice(0, 2)))
        expect(first).toMatchObject({ l2psUid: "n1", seq: 1, size: 2, status: "batched", blockNumber: null })
        expect((yield* store.lastBatch("n1"))?.id).toBe(first.id)
        expect((yield* store.takePending("n1", undefined, 10)).map((e) => e.id)).toEqual(ids.slice(2))

        // ids[1] is in batch 1 already: nothing of batch 2 may be stored, ids[2] stays pending.
        const refused = yield* Effect.flip(store.saveBatch(batch("n1", 2, 2), [ids[1]!, ids[2]!], leavesOf([ids[1]!, ids[2]!])))
        expect(refused).toMatchObject({ _tag: "StorageError", operation: "saveBatch" })
        expect(String((refused.cause as Error).message ?? refused.cause)).toContain("already batched")
        expect((yield* store.takePending("n1", undefined, 10)).map((e) => e.id)).toEqual(ids.slice(2))
        const rows = yield* sql<{ seq: number }>`SELECT seq FROM l2ps_batches ORDER BY seq`
        expect(rows.map((r) => Number(r.seq))).toEqual([1])

        const second = yield* store.saveBatch(batch("n1", 2, 2), ids.slice(2), leavesOf(ids.slice(2)))
        expect(yield* store.countPending("n1", undefined, 10)).toBe(0)
        const [last] = yield* sql<{ message_hash: string; from_key: string }>`
          SELECT message_hash, from_key FROM l2ps_messages WHERE id = ${Number(ids[3])}`
        const inclusion = yield* store.inclusionOf({ l2psUid: "n1", participant: last!.from_key, messageHash: last!.message_hash })
        expect(inclusion?.batch?.id).toBe(second.id)
        expect(inclusion?.leaves).toEqual(leavesOf(ids.slice(2)))
        expect(inclusion?.index).toBe(1)
        // The proof path's reads apart (finding 8): its place without the leaves, the leaves once per batch.
        const place = yield* store.placeOf({ l2psUid: "n1", participant: last!.from_key, messageHash: last!.message_hash })
        expect({ batch: place?.batch?.id, index: place?.index }).toEqual({ batch: second.id, index: 1 })
        expect(yield* store.batchLeaves(second.id)).toEqual(leavesOf(ids.slice(2)))
        // The same sequence number again (another writer's batch): refused by the network's sequence.
        const ids2 = yield* stored("n1", 1)
        expect(yield* Effect.flip(store.saveBatch(batch("n1", 2, 1), ids2, leavesOf(ids2)))).toMatchObject({ operation: "saveBatch" })
        expect(yield* store.countPending("n1", undefined, 10)).toBe(1)
      })))

    test("stats: per network, the mempool's depth and oldest message, the recipients' queue, open batches", () =>
      run(Effect.gen(function*() {
        const store = yield* PipelineStore
        const sql = yield* SqlClient.SqlClient
        const ids = yield* stored("n1", 3)
        yield* stored("n2", 2, true)
        const ts = (id: string) => Effect.map(sql<{ ts: string | number }>`SELECT ts FROM l2ps_messages WHERE id = ${Number(id)}`, (r) => Number(r[0]!.ts))
        const saved = yield* store.saveBatch(batch("n1", 1, 1), ids.slice(0, 1), leavesOf(ids.slice(0, 1)))
        expect(yield* store.stats).toEqual([
          { l2psUid: "n1", pending: 2, oldestPending: yield* ts(ids[1]!), queued: 0, unconfirmedBatches: 1, oldestUnconfirmed: 5 },
          { l2psUid: "n2", pending: 2, oldestPending: expect.any(Number), queued: 2, unconfirmedBatches: 0, oldestUnconfirmed: null }
        ])
        yield* store.confirm(saved.id)
        yield* store.saveBatch(batch("n1", 2, 2), ids.slice(1), leavesOf(ids.slice(1)))
        const [n1] = yield* store.stats
        expect(n1).toEqual({ l2psUid: "n1", pending: 0, oldestPending: null, queued: 0, unconfirmedBatches: 1, oldestUnconfirmed: 5 })
      })))
  })
}
