import { describe, expect, test } from "bun:test"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import m0001 from "../../migrations/0001_messages.ts"
import m0002 from "../../migrations/0002_legacy.ts"
import m0003 from "../../migrations/0003_pipeline.ts"
import m0004 from "../../migrations/0004_offline_expiry.ts"
import m0005 from "../../migrations/0005_batch_status.ts"
import m0006 from "../../migrations/0006_conversation_key.ts"
import m0007 from "../../migrations/0007_mempool.ts"
import m0008 from "../../migrations/0008_legacy_identity.ts"
import m0009 from "../../migrations/0009_message_hash_scope.ts"
import { leafHash } from "../../src/domain/Merkle.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import { COLUMNS, MESSAGES } from "../../src/storage/MessageRow.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import { databases } from "../support/TestDatabase.ts"

const upTo0006 = Migrator.make({})({
  loader: Migrator.fromRecord({
    "0001_messages": m0001,
    "0002_legacy": m0002,
    "0003_pipeline": m0003,
    "0004_offline_expiry": m0004,
    "0005_batch_status": m0005,
    "0006_conversation_key": m0006
  })
})

const upTo0007 = Migrator.make({})({
  loader: Migrator.fromRecord({
    "0001_messages": m0001,
    "0002_legacy": m0002,
    "0003_pipeline": m0003,
    "0004_offline_expiry": m0004,
    "0005_batch_status": m0005,
    "0006_conversation_key": m0006,
    "0007_mempool": m0007
  })
})

const upTo0009 = Migrator.make({})({
  loader: Migrator.fromRecord({
    "0001_messages": m0001,
    "0002_legacy": m0002,
    "0003_pipeline": m0003,
    "0004_offline_expiry": m0004,
    "0005_batch_status": m0005,
    "0006_conversation_key": m0006,
    "0007_mempool": m0007,
    "0008_legacy_identity": m0008,
    "0009_message_hash_scope": m0009
  })
})

for (const db of await databases()) {
  describe(`migrations on ${db.name}`, () => {
    test("0007 moves the mempool and the batches' members out of the message rows, keeping every status", () =>
      Effect.runPromise(Effect.gen(function*() {
        yield* upTo0006
        const sql = yield* SqlClient.SqlClient
        const message = (hash: string, status: string, batch: number | null) =>
          sql`
            INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
              delivery_status, send_outcome, l2ps_status, batch_id)
            VALUES ('net', 'a', 'b', 'a:b', ${hash}, '{"ciphertext":"Yw=="}'::jsonb, 1, 'sent', 'sent', ${status}, ${batch})`
        yield* sql`
          INSERT INTO l2ps_batches (id, l2ps_uid, seq, root, size, prev_batch_hash, batch_hash, signature, l2ps_tx_hash,
            status, created_at)
          VALUES (7, 'net', 1, 'r', 2, 'p', 'bh', 's', 'tx7', 'confirmed', 1), (8, 'net', 2, 'r', 1, 'bh', 'bh2', 's', 'tx8', 'submitted', 2)`
        yield* message("old-1", "l2ps_batched", 7)
        yield* message("old-2", "l2ps_batched", 7)
        yield* message("old-3", "l2ps_batched", 8)
        yield* message("old-4", "l2ps_pending", null)

        yield* Migrations.run
        const statuses = yield* sql<{ message_hash: string; l2ps_status: string; l2ps_tx_hash: string | null }>`
          SELECT ${sql.literal(COLUMNS)} FROM ${sql.literal(MESSAGES)} ORDER BY m.id`
        expect(statuses.map((r) => [r.message_hash, r.l2ps_status, r.l2ps_tx_hash])).toEqual([
          ["old-1", "l2ps_confirmed", "tx7"],
          ["old-2", "l2ps_confirmed", "tx7"],
          ["old-3", "l2ps_batched", "tx8"],
          ["old-4", "l2ps_pending", null]
        ])
        // Batches from before keep no leaf hashes: a proof computes them from the payloads.
        const store = yield* SqlPipelineStore.make
        const leafOf = (messageHash: string, timestamp: number) =>
          leafHash({ l2psUid: "net", messageHash, encrypted: { ciphertext: "Yw==" }, timestamp })
        expect(yield* store.inclusionOf({ l2psUid: "net", participant: "a", messageHash: "old-2" })).toMatchObject({ leaves: [leafOf("old-1", 1), leafOf("old-2", 1)], index: 1 })
        expect(yield* store.inclusionOf({ l2psUid: "net", participant: "b", messageHash: "old-3" })).toMatchObject({ leaves: [leafOf("old-3", 1)], index: 0 })
        const mempool = sql<{ l2ps_uid: string; message_hash: string }>`
          SELECT p.l2ps_uid, m.message_hash FROM l2ps_mempool p JOIN l2ps_messages m ON m.id = p.message_id ORDER BY m.id`
        expect(yield* mempool).toEqual([{ l2ps_uid: "net", message_hash: "old-4" }])

        // Whatever inserts a message puts it in the mempool, in the same statement.
        yield* sql`
          INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
            delivery_status, send_outcome)
          SELECT 'other', 'a', 'b', 'a:b', 'new-' || g, '{}'::jsonb, g, 'queued', 'queued' FROM generate_series(1, 3) g`
        expect((yield* mempool).map((r) => `${r.l2ps_uid}/${r.message_hash}`)).toEqual(["net/old-4", "other/new-1", "other/new-2", "other/new-3"])
      }).pipe(Effect.provide(db.layer)) as Effect.Effect<void>))

    test("0009 scopes messageHash to network and sender: existing rows stay, another sender may reuse a hash, the same sender may not", () =>
      Effect.runPromise(Effect.gen(function*() {
        yield* upTo0007
        const sql = yield* SqlClient.SqlClient
        const insert = (uid: string, from: string, to: string, hash: string) =>
          sql`
            INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
              delivery_status, send_outcome)
            VALUES (${uid}, ${from}, ${to}, ${from + ":" + to}, ${hash}, '{"ciphertext":"Yw=="}'::jsonb, 1, 'queued', 'queued')`
        yield* insert("net", "a", "b", "h1")
        yield* insert("net", "a", "c", "h2")
        // Before: one hash for the whole node.
        expect(yield* Effect.flip(insert("net", "c", "b", "h1"))).toBeDefined()

        yield* Migrations.run
        const rows = sql<{ l2ps_uid: string; from_key: string; message_hash: string }>`
          SELECT l2ps_uid, from_key, message_hash FROM l2ps_messages ORDER BY id`
        expect(yield* rows).toEqual([
          { l2ps_uid: "net", from_key: "a", message_hash: "h1" },
          { l2ps_uid: "net", from_key: "a", message_hash: "h2" }
        ])
        yield* insert("net", "c", "b", "h1")
        yield* insert("other", "a", "b", "h1")
        expect(yield* Effect.flip(insert("net", "a", "d", "h1"))).toBeDefined()
        expect((yield* rows).length).toBe(4)
        // The new key serves lookups by hash alone (ack, proof_request): it leads with the hash.
        const [index] = yield* sql<{ indexdef: string }>`
          SELECT indexdef FROM pg_indexes WHERE indexname = 'l2ps_messages_sender_hash'`
        expect(index!.indexdef).toContain("(message_hash, l2ps_uid, from_key)")
        expect(yield* sql`SELECT 1 FROM pg_constraint WHERE conname = 'l2ps_messages_message_hash_key'`).toEqual([])
      }).pipe(Effect.provide(db.layer)) as Effect.Effect<void>))

    test("0010 measures the payloads of pending messages for the byte quotas, and indexes failed rows for deletion", () =>
      Effect.runPromise(Effect.gen(function*() {
        yield* upTo0009
        const sql = yield* SqlClient.SqlClient
        const insert = (hash: string, status: string, awaitingAck: boolean) =>
          sql`
            INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
              delivery_status, awaiting_ack, send_outcome)
            VALUES ('net', 'a', 'b', 'a:b', ${hash}, '{"ciphertext":"Yw==","nonce":"bg=="}'::jsonb, 1, ${status}, ${awaitingAck}, 'queued')`
        yield* insert("queued", "queued", false)
        yield* insert("awaiting", "sent", true)
        yield* insert("sent", "sent", false)
        yield* Migrations.run
        const sizes = yield* sql<{ message_hash: string; size: number }>`SELECT message_hash, size FROM l2ps_messages ORDER BY id`
        const text = JSON.stringify({ ciphertext: "Yw==", nonce: "bg==" })
        // jsonb's text puts a space after each colon and comma: within a few bytes of what the sender wrote.
        expect(sizes.map((r) => [r.message_hash, Number(r.size)])).toEqual([["queued", text.length + 3], ["awaiting", text.length + 3], ["sent", 0]])
        const [index] = yield* sql<{ indexdef: string }>`SELECT indexdef FROM pg_indexes WHERE indexname = 'l2ps_messages_failed'`
        expect(index!.indexdef).toContain("WHERE (delivery_status = 'failed'::text)")
      }).pipe(Effect.provide(db.layer)) as Effect.Effect<void>))
  })
}
