import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect, Layer, TestClock, TestContext, TestServices } from "effect"
import { NodeKey } from "../../src/crypto/NodeKey.ts"
import * as NodeKeyModule from "../../src/crypto/NodeKey.ts"
import { verifyInclusion } from "../../src/domain/Merkle.ts"
import { makePipelineSignals, sleepingUntil } from "../support/PipelineSignals.ts"
import { makeTestL1 } from "../support/TestL1.ts"
import { hash, migratedPglite, peer, TEST_SEED, testNode } from "../support/TestNode.ts"
import { COLUMNS, MESSAGES } from "../../src/storage/MessageRow.ts"

type Signals = ReturnType<typeof makePipelineSignals>
type Node = Layer.Layer.Success<ReturnType<typeof testNode>>

/**
 * A TestClock scenario whose pipeline store tells the test each time it did something: the test waits
 * for those signals (and for stages asleep until their deadlines), not for live time.
 */
const scenario = <A, E>(
  config: Parameters<typeof testNode>[0],
  body: (signals: Signals) => Effect.Effect<A, E, Node>,
  l1?: (signals: Signals) => Parameters<typeof testNode>[1]
): Promise<A> => {
  const signals = makePipelineSignals()
  return Effect.runPromise(
    body(signals).pipe(
      Effect.provide(testNode(config, l1?.(signals), undefined, undefined, signals.layer)),
      Effect.scoped,
      Effect.provide(TestContext.TestContext)
    ) as Effect.Effect<A, E>
  )
}

/**
 * The block interval of these scenarios: no other timer of the node has it, so that a sleep until the
 * next block is the L1's or the finality stage's.
 */
const BLOCK = 1234

/**
 * Moves the clock one block at a time until `done`. After each move it waits until a stage sleeps
 * until the next block (one looked at this block; one that was still busy when the clock moved sleeps
 * until the block after, and the next move wakes it), or the finality confirmed something.
 */
const blocksUntil = (signals: Signals, blockMillis: number, what: string, done: Effect.Effect<boolean, unknown, Node>, max = 8) =>
  Effect.gen(function*() {
    for (let i = 0; i < max; i++) {
      const confirms = signals.count("confirm")
      if (yield* done) return
      yield* TestClock.adjust(blockMillis)
      const next = (yield* Clock.currentTimeMillis) + blockMillis
      yield* sleepingUntil(next, 1, () => signals.count("confirm") > confirms)
    }
    if (!(yield* done)) return yield* Effect.die(new Error(`not within ${max} blocks: ${what}`))
  })

const counts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ l2ps_status: string; n: number }>`
    SELECT l2ps_status, count(*)::int AS n FROM (SELECT ${sql.literal(COLUMNS)} FROM ${sql.literal(MESSAGES)}) AS s GROUP BY l2ps_status`
  return Object.fromEntries(rows.map((r) => [r.l2ps_status, Number(r.n)])) as Record<string, number>
})

const batches = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ id: number; seq: number; size: number; status: string; block_number: number | null; l2ps_tx_hash: string; root: string; l2ps_uid: string }>`
    SELECT id, seq, size, status, block_number, l2ps_tx_hash, root, l2ps_uid FROM l2ps_batches ORDER BY id`
})

const pair = Effect.gen(function*() {
  const a = yield* peer()
  const b = yield* peer()
  yield* a.register()
  yield* b.register()
  return { a, b }
})

const fast = { limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }

describe("L2PS pipeline (TestClock scenarios)", () => {
  test("a batch closes on size, without the clock moving", () =>
    scenario({ ...fast, maxBatchSize: 3 }, (signals) => Effect.gen(function*() {
      const { a, b } = yield* pair
      for (let i = 0; i < 7; i++) yield* a.sendTo(b.key)
      yield* signals.until("two full batches", Effect.map(counts, (c) => c.l2ps_batched === 6))
      // The seventh is below the size and the clock has not moved: nothing may batch it. A negative, so
      // it gets a moment of live time to (wrongly) happen in; no clock moves around it.
      yield* TestServices.provideLive(Effect.sleep(200))
      expect(yield* counts).toEqual({ l2ps_batched: 6, l2ps_pending: 1 })
      const bs = yield* batches
      expect(bs.map((x) => [x.seq, x.size])).toEqual([[1, 3], [2, 3]])
      const page = yield* b.history(a.key, { limit: 7 })
      const statuses = page.payload.messages.map((m: any) => m.l2psStatus)
      expect(statuses).toEqual(["l2ps_pending", "l2ps_batched", "l2ps_batched", "l2ps_batched", "l2ps_batched", "l2ps_batched", "l2ps_batched"])
      expect(page.payload.messages[1].status).toBe("l2ps_batched")
      expect(page.payload.messages[1].l2psTxHash).toBe(bs[1]!.l2ps_tx_hash)
    })))

  test("a batch closes on time: not before the interval, right at it", () =>
    scenario({ ...fast, maxBatchSize: 500, batchIntervalMillis: 2000 }, (signals) => Effect.gen(function*() {
      const { a, b } = yield* pair
      const sent = yield* Clock.currentTimeMillis
      yield* a.sendTo(b.key)
      yield* a.sendTo(b.key)
      // The batcher saw them: it sleeps until its deadline.
      yield* sleepingUntil(sent + 2000)
      yield* TestClock.adjust(1999)
      expect(signals.count("takePending")).toBe(0)
      expect(yield* counts).toEqual({ l2ps_pending: 2 })
      yield* TestClock.adjust(1)
      yield* signals.until("batched at 2000 ms", Effect.map(counts, (c) => c.l2ps_batched === 2))
    })))

  test("finality: confirmed once the configured depth of blocks sits on the including block", () =>
    scenario({ ...fast, batchIntervalMillis: 100, blockIntervalMillis: BLOCK, finalityDepth: 2 }, (signals) => Effect.gen(function*() {
      const { a, b } = yield* pair
      const sent = yield* Clock.currentTimeMillis
      yield* a.sendTo(b.key)
      yield* sleepingUntil(sent + 100)
      yield* TestClock.adjust(100)
      yield* signals.until("submitted", Effect.map(batches, (bs) => bs[0]?.status === "submitted"))
      const sql = yield* SqlClient.SqlClient
      const headOf = Effect.map(sql<{ n: number }>`SELECT max(number)::int AS n FROM l1_blocks`, (r) => Number(r[0]!.n))
      const seen: Array<{ head: number; status: string; block: number | null }> = []
      yield* blocksUntil(signals, BLOCK, "confirmed", Effect.gen(function*() {
        const [bt] = yield* batches
        seen.push({ head: yield* headOf, status: bt!.status, block: bt!.block_number })
        return bt!.status === "confirmed"
      }))
      const last = seen.at(-1)!
      expect(last.status).toBe("confirmed")
      const included = last.block!
      expect(last.head).toBeGreaterThanOrEqual(included + 2)
      for (const s of seen) if (s.head < included + 2) expect(s.status).toBe("submitted")
      expect(yield* counts).toEqual({ l2ps_confirmed: 1 })
      const page = yield* a.history(b.key)
      expect(page.payload.messages[0]).toMatchObject({ l2psStatus: "l2ps_confirmed", status: "l2ps_confirmed" })
    })))

  test("L1 down for a while, then back: the relay keeps working and every message is anchored once", () => {
    let control: ReturnType<typeof makeTestL1>["control"]
    const l1 = (signals: Signals) => {
      const made = makeTestL1(() => signals.record("l1"))
      control = made.control
      return made.layer
    }
    // Three full batches: they close on size, without the clock.
    return scenario({ ...fast, maxBatchSize: 4, batchIntervalMillis: 100, blockIntervalMillis: BLOCK, finalityDepth: 1 }, (signals) => Effect.gen(function*() {
      control.setDown(true)
      const { a, b } = yield* pair
      for (let i = 0; i < 12; i++) expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      yield* signals.until("batched while L1 is down", Effect.map(counts, (c) => c.l2ps_batched === 12))
      yield* signals.until("a first submit refused", Effect.sync(() => control.attempts() >= 1))
      // The submitter retries after 200 ms, then twice as long each time: each retry is a signal.
      for (const delay of [200, 400, 800]) {
        const tried = control.attempts()
        yield* sleepingUntil((yield* Clock.currentTimeMillis) + delay)
        yield* TestClock.adjust(delay)
        yield* signals.until("a retry", Effect.sync(() => control.attempts() > tried))
      }
      expect(control.attempts()).toBe(4)
      expect(control.accepted).toEqual([])
      yield* sleepingUntil((yield* Clock.currentTimeMillis) + 1600)
      control.setDown(false)
      yield* TestClock.adjust(1600)
      yield* signals.until("all submitted", Effect.map(batches, (bs) => bs.length === 3 && bs.every((x) => x.status === "submitted")))
      control.mine()
      control.mine()
      yield* blocksUntil(signals, BLOCK, "all confirmed", Effect.map(counts, (c) => c.l2ps_confirmed === 12))
      const bs = yield* batches
      expect(control.accepted).toEqual(bs.map((x) => x.l2ps_tx_hash))
      expect(control.transactions().map((t) => t.payload.seq)).toEqual([1, 2, 3])
      expect(control.transactions().map((t) => t.payload.root)).toEqual(bs.map((x) => x.root))
    }), l1)
  })

  test("restart in the middle of the pipeline: nothing lost, nothing anchored twice", () => {
    const { layer: l1, control } = makeTestL1()
    const signals = makePipelineSignals()
    const run = Effect.gen(function*() {
      const db = yield* Effect.context<SqlClient.SqlClient>()
      const node = (config: object) =>
        testNode({ ...fast, maxBatchSize: 3, batchIntervalMillis: 100, blockIntervalMillis: BLOCK, finalityDepth: 1, ...config }, l1, Layer.succeedContext(db), undefined, signals.layer)
      control.setDown(true)
      // First life: L1 is down, two full batches are proven but not anchored, two messages wait for
      // the interval; the node stops before it.
      yield* Effect.scoped(Effect.gen(function*() {
        const { a, b } = yield* pair
        for (let i = 0; i < 8; i++) yield* a.sendTo(b.key)
        yield* signals.until("first batches stored", Effect.map(counts, (c) => c.l2ps_batched === 6))
      }).pipe(Effect.provide(node({}))))
      const before = yield* batches
      expect(before.every((x) => x.status === "batched")).toBe(true)
      // Second life, a little later (past none of the first life's deadlines): L1 is back.
      control.setDown(false)
      yield* TestClock.adjust(50)
      yield* Effect.scoped(Effect.gen(function*() {
        // The batcher counted the two left at start: it sleeps until their interval has passed.
        yield* sleepingUntil((yield* Clock.currentTimeMillis) + 100)
        yield* TestClock.adjust(100)
        yield* signals.until("everything batched", Effect.map(counts, (c) => c.l2ps_batched === 8))
        yield* signals.until("batches submitted", Effect.map(batches, (bs) => bs.length === 3 && bs.every((x) => x.status === "submitted")))
        control.mine()
        control.mine()
        yield* blocksUntil(signals, BLOCK, "all confirmed", Effect.map(counts, (c) => c.l2ps_confirmed === 8))
      }).pipe(Effect.provide(node({}))))
      const after = yield* batches
      expect(after.map((x) => x.seq)).toEqual([1, 2, 3])
      expect(after.slice(0, before.length).map((x) => x.l2ps_tx_hash)).toEqual(before.map((x) => x.l2ps_tx_hash))
      expect(control.accepted).toEqual(after.map((x) => x.l2ps_tx_hash))
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ n: number; batched: number }>`
        SELECT count(*)::int AS n, count(bm.batch_id)::int AS batched
        FROM l2ps_messages m LEFT JOIN l2ps_batch_messages bm ON bm.message_id = m.id`
      expect(row).toEqual({ n: 8, batched: 8 })
    })
    return Effect.runPromise(
      Effect.scoped(Effect.flatMap(Layer.build(migratedPglite()), (ctx) => run.pipe(Effect.provide(ctx)))).pipe(
        Effect.provide(TestContext.TestContext)
      ) as Effect.Effect<void>
    )
  })

  test("proof_request: the path verifies against the root on the chain; only sender and recipient may ask", () =>
    scenario({ ...fast, maxBatchSize: 5, batchIntervalMillis: 100, blockIntervalMillis: BLOCK, finalityDepth: 1 }, (signals) => Effect.gen(function*() {
      const { a, b } = yield* pair
      const c = yield* peer()
      yield* c.register()
      const sent = yield* Clock.currentTimeMillis
      const hashes = [hash(), hash(), hash()]
      for (const h of hashes) yield* a.sendTo(b.key, h)
      const early = yield* b.request("proof_request", { messageHash: hashes[0] })
      expect(early.payload).toMatchObject({ messageHash: hashes[0], batch: null, path: [], l2psStatus: "l2ps_pending" })
      yield* sleepingUntil(sent + 100)
      yield* TestClock.adjust(100)
      yield* signals.until("submitted", Effect.map(batches, (bs) => bs[0]?.status === "submitted"))
      yield* blocksUntil(signals, BLOCK, "confirmed", Effect.map(batches, (bs) => bs[0]?.status === "confirmed"))
      const sql = yield* SqlClient.SqlClient
      const [onChain] = yield* sql<{ root: string; block_number: number }>`
        SELECT payload->>'root' AS root, block_number FROM l1_transactions`
      for (const h of hashes) {
        const r = yield* a.request("proof_request", { messageHash: h })
        expect(r.type).toBe("proof_response")
        const { leaf, path, batch } = r.payload
        expect(batch).toMatchObject({ status: "confirmed", size: 3, root: onChain!.root, blockNumber: Number(onChain!.block_number) })
        expect(verifyInclusion(leaf, path, onChain!.root)).toBe(true)
        const tampered = path.map((s: any, i: number) => (i === 0 ? { ...s, hash: "0".repeat(64) } : s))
        expect(verifyInclusion(leaf, tampered, onChain!.root)).toBe(false)
      }
      const third = yield* c.request("proof_request", { messageHash: hashes[0] })
      expect(third.payload).toEqual({ code: "PEER_NOT_FOUND", message: "Message not found" })
      const unknown = yield* a.request("proof_request", { messageHash: "nope" })
      expect(unknown.payload.code).toBe("PEER_NOT_FOUND")
      // The batch header on chain is signed by the node's key.
      const [tx] = yield* sql<{ payload: any }>`SELECT payload FROM l1_transactions`
      const payload = typeof tx!.payload === "string" ? JSON.parse(tx!.payload) : tx!.payload
      const key = yield* NodeKey
      expect(payload.signer).toBe(key.publicKeyHex)
      expect(NodeKeyModule.verify(payload.signer, Buffer.from(payload.batchHash, "hex"), payload.signature)).toBe(true)
      expect(NodeKeyModule.fromSeed(TEST_SEED).publicKeyHex).toBe(key.publicKeyHex)
    })))
})

