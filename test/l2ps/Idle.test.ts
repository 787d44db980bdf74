import { expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, TestClock, TestContext, TestServices } from "effect"
import { PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import { testNode } from "../support/TestNode.ts"

const liveSleep = (ms: number) => TestServices.provideLive(Effect.sleep(ms))

test("an idle node's pipelines neither count the mempool nor read open batches every block; they only look for strays", async () => {
  const calls = { submitted: 0, count: 0, any: 0 }
  const counting = Layer.effect(
    PipelineStore,
    Effect.map(SqlPipelineStore.make, (s) => ({
      ...s,
      batches: (uid: string, status: Parameters<typeof s.batches>[1]) =>
        Effect.suspend(() => {
          if (status === "submitted") calls.submitted++
          return s.batches(uid, status)
        }),
      countPending: (uid: string, afterId: string | undefined, max: number) =>
        Effect.suspend(() => {
          calls.count++
          return s.countPending(uid, afterId, max)
        }),
      anyPending: (uid: string) =>
        Effect.suspend(() => {
          calls.any++
          return s.anyPending(uid)
        })
    }))
  )
  const node = testNode({ blockIntervalMillis: 1000, batchIntervalMillis: 2000 }, undefined, undefined, undefined, counting)
  await Effect.runPromise(
    Effect.gen(function*() {
      // Every stage has started and looked once, in its first block (a node restarting may find work left).
      yield* liveSleep(300)
      yield* TestClock.adjust(1000)
      yield* liveSleep(100)
      const start = { ...calls }
      expect(start.count).toBeGreaterThan(0)
      expect(start.submitted).toBe(start.count)
      for (let i = 0; i < 9; i++) {
        yield* TestClock.adjust(1000)
        yield* liveSleep(30)
      }
      expect(calls.submitted - start.submitted).toBe(0)
      expect(calls.count - start.count).toBe(0)
      // One look per network every batch interval: at 2, 4, 6, 8 and 10 s (some may still be running).
      expect(calls.any - start.any).toBeGreaterThanOrEqual(start.count)
      expect(calls.any - start.any).toBeLessThanOrEqual(5 * start.count)
    }).pipe(Effect.provide(node), Effect.scoped, Effect.provide(TestContext.TestContext))
  )
})

test("a backlog nobody announced (rows written by another writer) is found by the sweep and drained batch after batch", async () => {
  const node = testNode({ blockIntervalMillis: 86_400_000, batchIntervalMillis: 2000, maxBatchSize: 3 })
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* liveSleep(300)
      yield* sql`
        INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
          delivery_status, awaiting_ack, send_outcome)
        SELECT 'default', 'a', 'b', 'a:b', 'stray-' || g, '{"ciphertext":"Yw==","nonce":"bg=="}'::jsonb, g,
          'queued', false, 'queued'
        FROM generate_series(1, 10) AS g`
      const batched = Effect.map(
        sql<{ n: number }>`SELECT count(*)::int AS n FROM l2ps_batch_messages`,
        (rows) => Number(rows[0]!.n)
      )
      // One sweep finds them; the full batches follow each other without waiting for another interval.
      yield* TestClock.adjust(2000)
      for (let i = 0; i < 100 && (yield* batched) < 9; i++) yield* liveSleep(20)
      expect(yield* batched).toBe(9)
      yield* TestClock.adjust(2000)
      for (let i = 0; i < 100 && (yield* batched) < 10; i++) yield* liveSleep(20)
      expect(yield* batched).toBe(10)
    }).pipe(Effect.provide(node), Effect.scoped, Effect.provide(TestContext.TestContext))
  )
})
