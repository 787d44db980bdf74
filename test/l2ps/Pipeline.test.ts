import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, TestClock, TestContext, TestServices } from "effect"
import { NodeKey } from "../../src/crypto/NodeKey.ts"
import * as NodeKeyModule from "../../src/crypto/NodeKey.ts"
import { verifyInclusion } from "../../src/domain/Merkle.ts"
import { makeTestL1 } from "../support/TestL1.ts"
import { hash, migratedPglite, peer, scenario, TEST_SEED, testNode } from "../support/TestNode.ts"
import { COLUMNS, MESSAGES } from "../../src/storage/MessageRow.ts"

const liveSleep = (ms: number) => TestServices.provideLive(Effect.sleep(ms))

/** Polls (on the live clock) until `cond` holds; fails after `ms`. */
const eventually = <E, R>(what: string, cond: Effect.Effect<boolean, E, R>, ms = 5000) =>
  Effect.gen(function*() {
    for (let waited = 0; waited < ms; waited += 20) {
      if (yield* cond) return
      yield* liveSleep(20)
    }
    return yield* Effect.die(new Error(`not within ${ms} ms: ${what}`))
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
    scenario({ ...fast, maxBatchSize: 3 }, Effect.gen(function*() {
      const { a, b } = yield* pair
      for (let i = 0; i < 7; i++) yield* a.sendTo(b.key)
      yield* eventually("two full batches", Effect.map(counts, (c) => c.l2ps_batched === 6))
      yield* liveSleep(200)
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
    scenario({ ...fast, maxBatchSize: 500, batchIntervalMillis: 2000 }, Effect.gen(function*() {
      const { a, b } = yield* pair
      yield* a.sendTo(b.key)
      yield* a.sendTo(b.key)
      yield* liveSleep(200)
      yield* TestClock.adjust(1999)
      yield* liveSleep(200)
      expect(yield* counts).toEqual({ l2ps_pending: 2 })
      yield* TestClock.adjust(1)
      yield* eventually("batched at 2000 ms", Effect.map(counts, (c) => c.l2ps_batched === 2))
    })))

  test("finality: confirmed once the configured depth of blocks sits on the including block", () =>
    scenario({ ...fast, batchIntervalMillis: 100, blockIntervalMillis: 1000, finalityDepth: 2 }, Effect.gen(function*() {
      const { a, b } = yield* pair
      yield* a.sendTo(b.key)
      yield* liveSleep(100)
      yield* TestClock.adjust(100)
      yield* eventually("submitted", Effect.map(batches, (bs) => bs[0]?.status === "submitted"))
      const sql = yield* SqlClient.SqlClient
      const headOf = Effect.map(sql<{ n: number }>`SELECT max(number)::int AS n FROM l1_blocks`, (r) => Number(r[0]!.n))
      const seen: Array<{ head: number; status: string; block: number | null }> = []
      for (let i = 0; i < 8 && seen.at(-1)?.status !== "confirmed"; i++) {
        yield* TestClock.adjust(1000)
        yield* liveSleep(150)
        const [bt] = yield* batches
        seen.push({ head: yield* headOf, status: bt!.status, block: bt!.block_number })
      }
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
    const { layer, control } = makeTestL1()
    return scenario({ ...fast, maxBatchSize: 4, batchIntervalMillis: 100, blockIntervalMillis: 1000, finalityDepth: 1 }, Effect.gen(function*() {
      control.setDown(true)
      const { a, b } = yield* pair
      for (let i = 0; i < 10; i++) expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      yield* liveSleep(100)
      yield* TestClock.adjust(100)
      yield* eventually("batched while L1 is down", Effect.map(counts, (c) => c.l2ps_batched === 10))
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("2 seconds")
        yield* liveSleep(30)
      }
      expect(control.attempts()).toBeGreaterThan(1)
      expect(control.accepted).toEqual([])
      control.setDown(false)
      yield* TestClock.adjust("5 seconds")
      yield* eventually("all submitted", Effect.map(batches, (bs) => bs.length === 3 && bs.every((x) => x.status === "submitted")))
      control.mine()
      control.mine()
      yield* TestClock.adjust("1 second")
      yield* eventually("all confirmed", Effect.map(counts, (c) => c.l2ps_confirmed === 10))
      const bs = yield* batches
      expect(control.accepted).toEqual(bs.map((x) => x.l2ps_tx_hash))
      expect(control.transactions().map((t) => t.payload.seq)).toEqual([1, 2, 3])
      expect(control.transactions().map((t) => t.payload.root)).toEqual(bs.map((x) => x.root))
    }), layer)
  })

  test("restart in the middle of the pipeline: nothing lost, nothing anchored twice", () => {
    const { layer: l1, control } = makeTestL1()
    const run = Effect.gen(function*() {
      const db = yield* Effect.context<SqlClient.SqlClient>()
      const node = (config: object) => testNode({ ...fast, maxBatchSize: 3, batchIntervalMillis: 100, blockIntervalMillis: 1000, finalityDepth: 1, ...config }, l1, Layer.succeedContext(db))
      control.setDown(true)
      // First life: L1 is down, batches are proven but not anchored; the node stops.
      yield* Effect.scoped(Effect.gen(function*() {
        const { a, b } = yield* pair
        for (let i = 0; i < 8; i++) yield* a.sendTo(b.key)
        yield* liveSleep(100)
        yield* TestClock.adjust(100)
        yield* eventually("first batches stored", Effect.map(counts, (c) => (c.l2ps_batched ?? 0) >= 6))
      }).pipe(Effect.provide(node({}))))
      const before = yield* batches
      expect(before.every((x) => x.status === "batched")).toBe(true)
      // Second life: L1 is back.
      control.setDown(false)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* liveSleep(100)
        yield* TestClock.adjust(200)
        yield* eventually("everything submitted", Effect.map(counts, (c) => c.l2ps_batched === 8))
        yield* eventually("batches submitted", Effect.map(batches, (bs) => bs.every((x) => x.status === "submitted")))
        control.mine()
        control.mine()
        yield* TestClock.adjust("1 second")
        yield* eventually("all confirmed", Effect.map(counts, (c) => c.l2ps_confirmed === 8))
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
    scenario({ ...fast, maxBatchSize: 5, batchIntervalMillis: 100, blockIntervalMillis: 1000, finalityDepth: 1 }, Effect.gen(function*() {
      const { a, b } = yield* pair
      const c = yield* peer()
      yield* c.register()
      const hashes = [hash(), hash(), hash()]
      for (const h of hashes) yield* a.sendTo(b.key, h)
      const early = yield* b.request("proof_request", { messageHash: hashes[0] })
      expect(early.payload).toMatchObject({ messageHash: hashes[0], batch: null, path: [], l2psStatus: "l2ps_pending" })
      yield* liveSleep(100)
      yield* TestClock.adjust(100)
      yield* eventually("submitted", Effect.map(batches, (bs) => bs[0]?.status === "submitted"))
      yield* TestClock.adjust(1000)
      yield* liveSleep(100)
      yield* TestClock.adjust(1000)
      yield* eventually("confirmed", Effect.map(batches, (bs) => bs[0]?.status === "confirmed"))
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

