/**
 * Finding 8 of the security review on TestClock: reads (history, proof_request, discover) are budgeted by
 * their cost per key and per address, not only per connection; `discover` is bounded and paginated.
 * Refusals and counts are asserted, not latencies.
 */
import { describe, expect, test } from "bun:test"
import { Effect, TestClock } from "effect"
import { legacyScenario, registered } from "../legacy/LegacyTestClient.ts"
import { hash, identity, peer, scenario } from "../support/TestNode.ts"

const TIMEOUT = 60_000
const fast = { limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 }, registrationBurstPerAddress: 1000 }

/** `a` and `b` with `n` messages between them (b offline: queued). */
const conversation = (n: number, address?: string) =>
  Effect.gen(function*() {
    const a = yield* peer(identity(), address)
    yield* a.register()
    const b = identity()
    for (let i = 0; i < n; i++) expect((yield* a.sendTo(b.key)).type).toBe("message_queued")
    return { a, b }
  })

/** Asks `times` history pages; returns how many were answered before the first refusal, and the refusal. */
const pages = (reader: Effect.Effect.Success<ReturnType<typeof peer>>, peerKey: string, times: number) =>
  Effect.gen(function*() {
    let answered = 0
    for (let i = 0; i < times; i++) {
      const r = yield* reader.history(peerKey, { limit: 200 })
      if (r.type !== "history_response") return { answered, refusal: r.payload }
      answered++
    }
    return { answered, refusal: undefined }
  })

describe("read budget per key and per address", () => {
  test("history: a key past its budget gets RATE_LIMITED on every socket; another key on the same address is served; the budget refills", () =>
    scenario({ ...fast, readBurstPerKey: 1000, readRatePerKey: 100, readBurstPerAddress: 1_000_000, readRatePerAddress: 1_000_000 }, Effect.gen(function*() {
      const { a, b } = yield* conversation(50)
      // 51 rows and ~10 KB a page: ~53 each, so the burst of 1000 gives 19 pages.
      const first = yield* pages(a, b.key, 40)
      expect(first.refusal).toEqual({ code: "RATE_LIMITED", message: "Too many reads" })
      expect(first.answered).toBeGreaterThanOrEqual(15)
      expect(first.answered).toBeLessThanOrEqual(20)
      // Another socket of the same key shares the budget.
      const a2 = yield* peer(a.id)
      yield* a2.register()
      expect((yield* a2.history(b.key, { limit: 200 })).payload).toEqual({ code: "RATE_LIMITED", message: "Too many reads" })
      // Another key, same address ("memory"): unaffected.
      const c = yield* peer()
      yield* c.register()
      const other = yield* pages(c, a.key, 5)
      expect(other).toEqual({ answered: 5, refusal: undefined })
      // 100 a second: a page's cost back in about half a second.
      yield* TestClock.adjust("1 second")
      expect((yield* a.history(b.key, { limit: 200 })).type).toBe("history_response")
    })), TIMEOUT)

  test("history: many keys of one address share its budget; a reader on another address is served", () =>
    scenario({ ...fast, readBurstPerKey: 1_000_000, readRatePerKey: 1_000_000, readBurstPerAddress: 1000, readRatePerAddress: 10 }, Effect.gen(function*() {
      // Five keys of one host, 20 messages each: ~25 a page, so the address's 1000 give ~40 pages in all.
      const readers = []
      for (let k = 0; k < 5; k++) readers.push(yield* conversation(20, "10.0.0.1"))
      let answered = 0
      let refused = 0
      for (const { a, b } of readers) {
        const r = yield* pages(a, b.key, 15)
        answered += r.answered
        if (r.refusal !== undefined) {
          expect(r.refusal).toEqual({ code: "RATE_LIMITED", message: "Too many reads" })
          refused++
        }
      }
      // Per key alone, every one of the 75 would be answered.
      expect(answered).toBeGreaterThanOrEqual(30)
      expect(answered).toBeLessThanOrEqual(47)
      expect(refused).toBeGreaterThanOrEqual(2)
      const elsewhere = yield* peer(identity(), "10.0.0.2")
      yield* elsewhere.register()
      expect(yield* pages(elsewhere, readers[0]!.a.key, 5)).toEqual({ answered: 5, refusal: undefined })
    })), TIMEOUT)

  test("proof_request: charged to the key's budget (a flood is refused, others are served)", () =>
    scenario({ ...fast, readBurstPerKey: 100, readRatePerKey: 10, readBurstPerAddress: 1_000_000, readRatePerAddress: 1_000_000 }, Effect.gen(function*() {
      const { a, b } = yield* conversation(3)
      let answered = 0
      let refusal: unknown
      for (let i = 0; i < 200 && refusal === undefined; i++) {
        const r = yield* a.request("proof_request", { messageHash: hash() })
        if (r.payload.code === "RATE_LIMITED") refusal = r.payload
        else answered++
      }
      expect(refusal).toEqual({ code: "RATE_LIMITED", message: "Too many reads" })
      // Two a proof: the burst of 100 answers 50 (not found) before refusing.
      expect(answered).toBeGreaterThanOrEqual(45)
      expect(answered).toBeLessThanOrEqual(51)
      const c = yield* peer()
      yield* c.register()
      expect((yield* c.request("proof_request", { messageHash: hash() })).payload).toEqual({ code: "PEER_NOT_FOUND", message: "Message not found" })
      void b
    })), TIMEOUT)
})

describe("discover is bounded", () => {
  test("at most DISCOVER_MAX_PEERS keys a page, with nextCursor to the rest; registered.onlinePeers bounded the same", () =>
    scenario({ ...fast, discoverMaxPeers: 5 }, Effect.gen(function*() {
      const all: Array<string> = []
      for (let i = 0; i < 12; i++) {
        const p = yield* peer()
        yield* p.register()
        all.push(p.key)
      }
      const me = yield* peer()
      const registered = yield* me.register()
      expect(registered.payload.onlinePeers.length).toBe(5)
      // As the SDK asks: no arguments, `peers` (bounded) and a cursor it ignores.
      const first = yield* me.request("discover", {})
      expect(first.payload.peers.length).toBe(5)
      expect(typeof first.payload.nextCursor).toBe("string")
      const seen = [...first.payload.peers]
      let cursor = first.payload.nextCursor
      while (cursor !== undefined) {
        const page = yield* me.request("discover", { cursor })
        expect(page.payload.peers.length).toBeLessThanOrEqual(5)
        seen.push(...page.payload.peers)
        cursor = page.payload.nextCursor
      }
      expect(seen.sort()).toEqual([...all, me.key].sort())
      expect((yield* me.request("discover", { cursor: "x" })).payload).toEqual({
        code: "INVALID_MESSAGE",
        message: "cursor must be the nextCursor of a discover_response"
      })
      expect((yield* me.request("discover", { limit: 6 })).payload.code).toBe("INVALID_MESSAGE")
      expect((yield* me.request("discover", { limit: 2 })).payload.peers.length).toBe(2)
    })), TIMEOUT)

  test("legacy: discover holds at most DISCOVER_MAX_PEERS clientIds", () =>
    legacyScenario({ discoverMaxPeers: 3, registrationBurstPerAddress: 1000 }, Effect.gen(function*() {
      const ids = ["p0", "p1", "p2", "p3", "p4"]
      const clients = []
      for (const id of ids) clients.push(yield* registered(id))
      const reply = yield* clients[4]!.request("discover", {})
      expect(reply).toEqual({ type: "discover", payload: { peers: ["p0", "p1", "p2"] } })
    })), TIMEOUT)
})
