/**
 * MESSAGE_RETENTION on PGlite and Postgres: confirmed messages older than it are removed in chunks by a
 * supervised loop on the Clock; batch headers stay; messages still waiting for their recipient, and
 * batches not yet confirmed or not old enough, are left alone.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, type Scope, TestClock, TestContext, TestServices } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import { PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import * as MessageRetention from "../../src/ops/MessageRetention.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import { sleepingUntil } from "../support/PipelineSignals.ts"
import { databases } from "../support/TestDatabase.ts"

const DAY = 86_400_000
const RETENTION = 10 * DAY
const NOW = 100 * DAY

/** Inserts `n` messages of `status` (they enter the mempool) and batches them, created at `at`. */
const seedBatch = (seq: number, n: number, at: number, status: "sent" | "queued" | "delivered", confirmed = true) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* PipelineStore
    const ids = yield* sql<{ id: string | number }>`
      INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
        delivery_status, awaiting_ack, send_outcome)
      SELECT 'default', 'a', 'b', 'a:b', ${`b${seq}-`} || g, '{"ciphertext":"Yw==","nonce":"bg=="}'::jsonb, ${at - DAY}::int8 + g,
        ${status}, false, 'sent'
      FROM generate_series(1, ${n}) AS g
      RETURNING id`
    const batch = yield* store.saveBatch(
      {
        l2psUid: "default", seq, root: `root${seq}`, size: n, prevBatchHash: `prev${seq}`, batchHash: `hash${seq}`,
        signature: "sig", l2psTxHash: `tx${seq}`, createdAt: at
      },
      ids.map((r) => String(r.id)),
      ids.map((_, i) => `leaf${seq}-${i}`)
    )
    if (confirmed) yield* store.confirm(batch.id)
    return batch.id
  })

const countsOf = (batchId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ messages: number | string; members: number | string; pruned: boolean | null; root: string | null }>`
      SELECT
        (SELECT count(*) FROM l2ps_batch_messages bm JOIN l2ps_messages m ON m.id = bm.message_id WHERE bm.batch_id = ${Number(batchId)}) AS messages,
        (SELECT count(*) FROM l2ps_batch_messages WHERE batch_id = ${Number(batchId)}) AS members,
        (SELECT pruned FROM l2ps_batches WHERE id = ${Number(batchId)}) AS pruned,
        (SELECT root FROM l2ps_batches WHERE id = ${Number(batchId)}) AS root`
    return { messages: Number(row!.messages), members: Number(row!.members), pruned: row!.pruned, root: row!.root }
  })

/** Waits (live time) until `cond` holds: the sweep runs on its own fiber against a real database. */
const eventually = <R>(what: string, cond: Effect.Effect<boolean, unknown, R>) =>
  Effect.gen(function*() {
    const until = Date.now() + 10_000
    while (!(yield* cond)) {
      if (Date.now() > until) return yield* Effect.die(new Error(`not within 10 s: ${what}`))
      yield* TestServices.provideLive(Effect.sleep(20))
    }
  })

const scenario = (
  db: Layer.Layer<SqlClient.SqlClient, unknown>,
  body: Effect.Effect<void, unknown, SqlClient.SqlClient | PipelineStore | NodeConfig.NodeConfig | Scope.Scope>
) =>
  Effect.runPromise(
    body.pipe(
      Effect.provide(
        SqlPipelineStore.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run)),
          Layer.provideMerge(NodeConfig.layer({ messageRetentionMillis: RETENTION })),
          Layer.provideMerge(db)
        )
      ),
      Effect.scoped,
      Effect.provide(TestContext.TestContext)
    )
  )

for (const db of await databases()) {
  describe(`message retention (${db.name})`, () => {
    test("old confirmed messages go in chunks, headers stay; waiting, recent and unconfirmed ones stay", () =>
      scenario(db.layer, Effect.gen(function*() {
        yield* TestClock.setTime(NOW)
        const big = yield* seedBatch(1, 2 * MessageRetention.PRUNE_CHUNK + 7, NOW - 20 * DAY, "sent")
        const waiting = yield* seedBatch(2, 3, NOW - 19 * DAY, "delivered")
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE l2ps_messages SET delivery_status = 'queued' WHERE message_hash = 'b2-2'`
        // Younger than the retention by 90 minutes: its turn comes at the second hourly sweep.
        const recent = yield* seedBatch(3, 4, NOW - RETENTION + 90 * 60_000, "sent")
        const unconfirmed = yield* seedBatch(4, 2, NOW - 18 * DAY, "sent", false)

        yield* Layer.build(MessageRetention.layer)
        yield* eventually("the old batch pruned", Effect.map(countsOf(big), (c) => c.pruned === true))
        yield* eventually("the waiting batch swept", Effect.map(countsOf(waiting), (c) => c.messages === 1))
        expect(yield* countsOf(big)).toEqual({ messages: 0, members: 0, pruned: true, root: "root1" })
        // The message still queued for its recipient stays, and so do the leaves its proof needs.
        expect(yield* countsOf(waiting)).toEqual({ messages: 1, members: 3, pruned: false, root: "root2" })
        expect(yield* countsOf(recent)).toEqual({ messages: 4, members: 4, pruned: false, root: "root3" })
        expect(yield* countsOf(unconfirmed)).toEqual({ messages: 2, members: 2, pruned: false, root: "root4" })
        const [headers] = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM l2ps_batches`
        expect(Number(headers!.n)).toBe(4)

        // Delivered later: the next sweep takes it and the batch's leaves.
        const every = MessageRetention.sweepInterval(RETENTION)
        expect(every).toBe(3_600_000)
        yield* sql`UPDATE l2ps_messages SET delivery_status = 'delivered' WHERE message_hash = 'b2-2'`
        yield* sleepingUntil(NOW + every)
        yield* TestClock.adjust(every)
        yield* eventually("the waiting batch pruned", Effect.map(countsOf(waiting), (c) => c.pruned === true))
        expect(yield* countsOf(waiting)).toEqual({ messages: 0, members: 0, pruned: true, root: "root2" })
        yield* sleepingUntil(NOW + 2 * every)
        expect(yield* countsOf(recent)).toEqual({ messages: 4, members: 4, pruned: false, root: "root3" })
        // An hour on, it is older than the retention too.
        yield* TestClock.adjust(every)
        yield* eventually("the recent batch pruned", Effect.map(countsOf(recent), (c) => c.pruned === true))
        expect(yield* countsOf(unconfirmed)).toEqual({ messages: 2, members: 2, pruned: false, root: "root4" })
      })), 30_000)

    test("unset, nothing is ever removed", () =>
      scenario(db.layer, Effect.gen(function*() {
        yield* TestClock.setTime(NOW)
        const old = yield* seedBatch(1, 3, NOW - 90 * DAY, "sent")
        yield* Layer.build(MessageRetention.layer).pipe(Effect.provide(NodeConfig.layer({ messageRetentionMillis: null })))
        yield* TestClock.adjust(30 * DAY)
        yield* TestServices.provideLive(Effect.sleep(200))
        expect(yield* countsOf(old)).toEqual({ messages: 3, members: 3, pruned: false, root: "root1" })
      })), 30_000)
  })
}
