import { expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect, TestClock, TestContext } from "effect"
import { LEGACY_UID } from "../../src/domain/LegacyUid.ts"
import { NodeConfig } from "../../src/config/NodeConfig.ts"
import { makePipelineSignals, sleepingUntil } from "../support/PipelineSignals.ts"
import { testNode } from "../support/TestNode.ts"

/** A block interval no other timer of the node has, and a batch interval of two blocks. */
const BLOCK = 1234
const BATCH = 2 * BLOCK

/** How many pipelines the node runs: one per served network, and the legacy one. */
const pipelines = Effect.map(NodeConfig, (cfg) => new Set([...cfg.networks.keys(), LEGACY_UID]).size)

test("an idle node's pipelines neither count the mempool nor read open batches every block; they only look for strays", async () => {
  const signals = makePipelineSignals()
  const node = testNode({ blockIntervalMillis: BLOCK, batchIntervalMillis: BATCH }, undefined, undefined, undefined, signals.layer)
  await Effect.runPromise(
    Effect.gen(function*() {
      const n = yield* pipelines
      const t0 = yield* Clock.currentTimeMillis
      // Every stage has started and looked once (a node restarting may find work left): the batchers
      // counted and sleep until their sweep, the finality stages and the L1 until the first block.
      yield* sleepingUntil(t0 + BATCH, n)
      yield* sleepingUntil(t0 + BLOCK, n + 1)
      yield* TestClock.adjust(BLOCK)
      yield* signals.until("each finality stage looked in the first block", Effect.sync(() => signals.count("batches:submitted") === n))
      const start = { count: signals.count("countPending"), submitted: signals.count("batches:submitted"), any: signals.count("anyPending") }
      expect(start.count).toBe(n)
      // Nine blocks more; the batchers look for strays once a batch interval, at 2, 4, 6, 8 and 10 blocks.
      for (let k = 1; k <= 5; k++) {
        // Each batcher, and the L1, sleeps until then.
        yield* sleepingUntil(t0 + k * BATCH, n + 1)
        yield* TestClock.adjust(BLOCK)
        yield* signals.until(`the sweep at block ${2 * k}`, Effect.sync(() => signals.count("anyPending") === start.any + k * n))
        if (k < 5) {
          yield* sleepingUntil(t0 + (2 * k + 1) * BLOCK)
          yield* TestClock.adjust(BLOCK)
        }
      }
      expect(signals.count("batches:submitted") - start.submitted).toBe(0)
      expect(signals.count("countPending") - start.count).toBe(0)
      expect(signals.count("anyPending") - start.any).toBe(5 * n)
    }).pipe(Effect.provide(node), Effect.scoped, Effect.provide(TestContext.TestContext))
  )
})

test("a backlog nobody announced (rows written by another writer) is found by the sweep and drained batch after batch", async () => {
  const signals = makePipelineSignals()
  const node = testNode({ blockIntervalMillis: 86_400_000, batchIntervalMillis: 2000, maxBatchSize: 3 }, undefined, undefined, undefined, signals.layer)
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const n = yield* pipelines
      const t0 = yield* Clock.currentTimeMillis
      // The batchers counted nothing and sleep until their sweep.
      yield* sleepingUntil(t0 + 2000, n)
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
      yield* signals.until("three full batches", Effect.map(batched, (b) => b === 9))
      // The last one waits for its interval, as the other batchers wait for their next sweep.
      yield* sleepingUntil(t0 + 4000, n)
      expect(yield* batched).toBe(9)
      yield* TestClock.adjust(2000)
      yield* signals.until("the last one", Effect.map(batched, (b) => b === 10))
    }).pipe(Effect.provide(node), Effect.scoped, Effect.provide(TestContext.TestContext))
  )
})
