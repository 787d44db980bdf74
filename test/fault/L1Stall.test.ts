/**
 * Fault: L1 stalls for ten (simulated) minutes while messages keep arriving; a TestClock scenario
 * over in-memory sockets and PGlite, with a host L1 that first hangs (calls are accepted and never
 * answered, like a lost connection) and then refuses (fails at once).
 *
 * test/l2ps/Pipeline.test.ts already covers L1 refusing for ~10 s with 10 messages and a restart
 * mid-pipeline. What this adds: a stall of minutes, an L1 that does not answer at all, traffic
 * during the whole stall (more batches than the pipeline's queues hold), the retry pace, and the
 * hash chain and proofs after L1 is back. Asserted:
 * - the relay keeps acknowledging and delivering (`message_sent`, live delivery) throughout;
 * - the queues stay bounded: at most PROVEN_QUEUE (16) + 2 batches are proven ahead of L1, the rest
 *   of the messages wait in storage as `l2ps_pending`; nothing is submitted or confirmed meanwhile;
 * - the submitter keeps retrying at a bounded pace (no busy loop, no giving up), through the hang;
 * - once L1 is back every batch is submitted once and confirmed, in order (seq 1..n, each chained
 *   to the previous batch hash), and every message's inclusion proof verifies against the root L1 holds.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, TestClock, TestServices } from "effect"
import { L1, L1Error } from "../../src/l1/L1.ts"
import { verifyInclusion } from "../../src/domain/Merkle.ts"
import { makeTestL1 } from "../support/TestL1.ts"
import { randomHash } from "../support/L2psClient.ts"
import { peer, scenario } from "../support/TestNode.ts"
import { COLUMNS, MESSAGES } from "../../src/storage/MessageRow.ts"

const liveSleep = (ms: number) => TestServices.provideLive(Effect.sleep(ms))

const eventually = <E, R>(what: string, cond: Effect.Effect<boolean, E, R>, ms = 10_000) =>
  Effect.gen(function*() {
    for (let waited = 0; waited < ms; waited += 20) {
      if (yield* cond) return
      yield* liveSleep(20)
    }
    return yield* Effect.die(new Error(`not within ${ms} ms: ${what}`))
  })

const statusCounts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ l2ps_status: string; n: number }>`
    SELECT l2ps_status, count(*)::int AS n FROM (SELECT ${sql.literal(COLUMNS)} FROM ${sql.literal(MESSAGES)}) AS s GROUP BY l2ps_status`
  return Object.fromEntries(rows.map((r) => [r.l2ps_status, Number(r.n)])) as Record<string, number>
})

interface BatchRow {
  seq: number
  size: number
  status: string
  l2ps_tx_hash: string
  root: string
  prev_batch_hash: string
  batch_hash: string
}
const batches = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<BatchRow>`
    SELECT seq, size, status, l2ps_tx_hash, root, prev_batch_hash, batch_hash FROM l2ps_batches
    WHERE l2ps_uid = 'default' ORDER BY seq`
})

/** The test L1 with two failure modes on top: `hang` (calls never answer) and `refuse` (calls fail). */
const stallingL1 = () => {
  const { layer: base, control } = makeTestL1()
  let mode: "up" | "hang" | "refuse" = "up"
  let calls = 0
  const guard = <A>(call: Effect.Effect<A, L1Error>): Effect.Effect<A, L1Error> =>
    Effect.suspend(() => {
      calls++
      return mode === "hang" ? Effect.never : mode === "refuse" ? Effect.fail(new L1Error({ message: "L1 unreachable" })) : call
    })
  const layer = Layer.effect(
    L1,
    Effect.map(L1, (l1) =>
      L1.of({
        name: "stalling",
        submit: (tx) => guard(l1.submit(tx)),
        inclusion: (txHash) => guard(l1.inclusion(txHash)),
        head: guard(l1.head)
      }))
  ).pipe(Layer.provide(base))
  return { layer, control, setMode: (m: typeof mode) => (mode = m), calls: () => calls }
}

const PROVEN_QUEUE = 16
const PER_MINUTE = 12
const BATCH = 5

describe("L1 stalled for minutes", () => {
  test("relay keeps acknowledging, queues stay bounded, everything is anchored in order afterwards", () => {
    const l1 = stallingL1()
    return scenario({
      limits: { rateLimitBurst: 100_000, rateLimitPerSec: 100_000, epochQuota: 1_000_000 },
      maxBatchSize: BATCH,
      // (long intervals keep the number of wake-ups per simulated minute, and so the run time, low;
      // presence, a sweep a second otherwise, is not what this is about)
      batchIntervalMillis: 10_000,
      blockIntervalMillis: 10_000,
      presenceSweepMillis: 86_400_000,
      finalityDepth: 1
    }, Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register()
      yield* b.register()
      const sent: string[] = []
      const sendOne = Effect.gen(function*() {
        const h = randomHash() // (TestNode.hash() repeats itself: h1 and h10 pad to the same 64 chars)
        const reply = yield* a.sendTo(b.key, h)
        expect(reply.type).toBe("message_sent")
        const delivered = yield* b.next()
        expect(delivered).toMatchObject({ type: "message", payload: { messageHash: h, from: a.key } })
        sent.push(h)
      })
      /** Moves simulated time by `seconds`, five seconds at a time, letting the pipeline run in between. */
      const advance = (seconds: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < seconds; i += 5) {
            yield* TestClock.adjust(Math.min(5, seconds - i) * 1000)
            yield* liveSleep(2)
          }
        })

      // Warm-up with L1 up: one batch anchored and confirmed.
      for (let i = 0; i < BATCH; i++) yield* sendOne
      yield* eventually("the first batch submitted", Effect.map(batches, (bs) => bs[0]?.status === "submitted"))
      l1.control.mine()
      l1.control.mine()
      yield* advance(10)
      yield* eventually("the first batch confirmed", Effect.map(statusCounts, (c) => c.l2ps_confirmed === BATCH))

      // Ten minutes of stall: five hanging, five refusing; a burst of 12 messages every minute.
      const callsAtStall = l1.calls()
      let callsAtRefuse = 0
      for (let minute = 0; minute < 10; minute++) {
        if (minute === 0) l1.setMode("hang")
        if (minute === 5) {
          l1.setMode("refuse")
          callsAtRefuse = l1.calls()
        }
        for (let i = 0; i < PER_MINUTE; i++) yield* sendOne
        yield* advance(60)
      }
      const callsDuringRefuse = l1.calls() - callsAtRefuse
      yield* liveSleep(200)

      // Still nothing new on L1, nothing submitted or confirmed; the rest waits, bounded.
      expect(l1.control.accepted.length).toBe(1)
      const during = yield* batches
      const counts = yield* statusCounts
      const stallMessages = 10 * PER_MINUTE
      expect(during.filter((x) => x.status !== "batched").map((x) => x.seq)).toEqual([1])
      expect(during.length - 1).toBeGreaterThanOrEqual(PROVEN_QUEUE)
      expect(during.length - 1).toBeLessThanOrEqual(PROVEN_QUEUE + 2)
      expect(counts.l2ps_confirmed).toBe(BATCH)
      const batchedDuring = during.slice(1).reduce((n, x) => n + x.size, 0)
      expect(counts.l2ps_batched).toBe(batchedDuring)
      expect(counts.l2ps_pending).toBe(stallMessages - batchedDuring)
      expect(counts.l2ps_pending).toBeGreaterThan(0)
      // The submitter kept trying while L1 refused, at most every 5 s or so, without spinning.
      expect(callsDuringRefuse).toBeGreaterThanOrEqual(30)
      expect(callsDuringRefuse).toBeLessThanOrEqual(150)
      // …and through the hang: a call that never answers is abandoned after 30 s and tried again.
      expect(callsAtRefuse - callsAtStall).toBeGreaterThanOrEqual(5)

      // History shows the statuses the stall left.
      const page = yield* a.history(b.key, { limit: 200 })
      const statuses = new Set(page.payload.messages.slice(0, stallMessages).map((m: any) => m.l2psStatus))
      expect([...statuses].sort()).toEqual(["l2ps_batched", "l2ps_pending"])

      // L1 is back: everything is submitted and confirmed, in order.
      l1.setMode("up")
      const total = BATCH + stallMessages
      for (let s = 0; s < 60 && (yield* statusCounts).l2ps_confirmed !== total; s++) {
        yield* advance(10)
        l1.control.mine()
        yield* liveSleep(5)
      }
      yield* eventually("every message confirmed", Effect.map(statusCounts, (c) => c.l2ps_confirmed === total))
      const after = yield* batches
      expect(after.map((x) => x.seq)).toEqual(after.map((_, i) => i + 1))
      expect(after.every((x) => x.status === "confirmed")).toBe(true)
      expect(after.reduce((n, x) => n + x.size, 0)).toBe(total)
      for (let i = 1; i < after.length; i++) expect(after[i]!.prev_batch_hash).toBe(after[i - 1]!.batch_hash)
      expect(l1.control.accepted).toEqual(after.map((x) => x.l2ps_tx_hash))
      expect(l1.control.transactions().map((t) => t.payload.seq)).toEqual(after.map((x) => x.seq))

      // Every message's proof verifies against the root of the L1 transaction that anchors it.
      const onChain = new Map(l1.control.transactions().map((t) => [t.hash, t.payload.root]))
      for (const h of sent) {
        const r = yield* a.request("proof_request", { messageHash: h })
        expect(r.type).toBe("proof_response")
        const root = onChain.get(r.payload.batch.l2psTxHash)
        expect(root).toBe(r.payload.batch.root)
        expect(r.payload.batch.status).toBe("confirmed")
        expect(verifyInclusion(r.payload.leaf, r.payload.path, root!)).toBe(true)
      }
    }), l1.layer)
  }, 60_000)
})
