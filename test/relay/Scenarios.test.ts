import { describe, expect, test } from "bun:test"
import { Chunk, Clock, Deferred, Effect, Fiber, Layer, TestClock, TestServices } from "effect"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import { Storage } from "../../src/storage/Storage.ts"
import { AddressLimits } from "../../src/limits/AddressLimits.ts"
import { RateLimits } from "../../src/limits/RateLimits.ts"
import { ReplayGuard } from "../../src/relay/ReplayGuard.ts"
import { encrypted, type Frame, hash, identity, peer, scenario, scenarioAt } from "../support/TestNode.ts"

/** Two registered peers; `a` has seen `b` join. */
const pair = Effect.gen(function*() {
  const a = yield* peer()
  const b = yield* peer()
  expect((yield* a.register()).type).toBe("registered")
  expect((yield* b.register()).payload.onlinePeers).toEqual([a.key])
  expect(yield* a.next()).toMatchObject({ type: "peer_joined", payload: { publicKey: b.key } })
  return { a, b }
})

/** Storage whose commits wait at `gate` (opened once, for good); `entered` tells the first one arrived. */
const gatedCommits = () => {
  const entered = Effect.runSync(Deferred.make<void>())
  const gate = Effect.runSync(Deferred.make<void>())
  const gated = Layer.effect(
    Storage,
    Effect.map(SqlStorage.make(), (s) => ({
      ...s,
      commit: (batch: Parameters<typeof s.commit>[0]) =>
        Deferred.succeed(entered, undefined).pipe(Effect.zipRight(Deferred.await(gate)), Effect.zipRight(s.commit(batch)))
    }))
  )
  return { entered, gate, gated }
}

describe("TestClock scenarios", () => {
  test("rate limit: the burst is spent, then the clock refills the bucket", () =>
    scenario({ limits: { rateLimitBurst: 3, rateLimitPerSec: 1 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      for (let i = 0; i < 3; i++) expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      const refused = yield* a.sendTo(b.key)
      expect(refused.payload.code).toBe("RATE_LIMITED")
      yield* TestClock.adjust("1 second")
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      expect((yield* a.sendTo(b.key)).payload.code).toBe("RATE_LIMITED")
      yield* TestClock.adjust("2 seconds")
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      // b got exactly the accepted ones.
      for (let i = 0; i < 6; i++) expect((yield* b.next()).type).toBe("message")
      yield* b.nothing()
    })))

  test("rate limit: the epoch quota holds across reconnects and resets with the next epoch", () =>
    scenario({ limits: { rateLimitBurst: 100, rateLimitPerSec: 100, epochQuota: 2, epochSeconds: 10 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      yield* a.socket.close
      const again = yield* peer(a.id)
      yield* again.register()
      expect((yield* again.sendTo(b.key)).type).toBe("message_sent")
      const refused = yield* again.sendTo(b.key)
      expect(refused.payload).toEqual({ code: "RATE_LIMITED", message: "Quota exceeded (2 messages per 10 s)" })
      yield* TestClock.adjust("10 seconds")
      expect((yield* again.sendTo(b.key)).type).toBe("message_sent")
    })))

  test("proof window: a proof older than the window is refused, a fresh one accepted once", () =>
    scenarioAt(3_600_000, { proofWindowMillis: 300_000 }, Effect.gen(function*() {
      const now = 3_600_000
      const a = yield* peer()
      const stale = yield* a.register({ at: now - 300_001 })
      expect(stale.payload.code).toBe("INVALID_PROOF")
      expect(stale.payload.message).toContain("within 300 s")
      const future = yield* a.register({ at: now + 300_001 })
      expect(future.payload.code).toBe("INVALID_PROOF")
      expect((yield* a.register({ at: now - 299_000 })).type).toBe("registered")
      // The same proof again, even from another socket, is a replay.
      const b = yield* peer(a.id)
      const replay = yield* b.register({ at: now - 299_000 })
      expect(replay.payload).toEqual({ code: "INVALID_PROOF", message: "Proof already used" })
    })))

  test("proof window: a captured proof expires as the clock moves on", () =>
    scenario({}, Effect.gen(function*() {
      const signedAt = 0
      yield* TestClock.adjust("301 seconds")
      // Connected now: a socket that has not registered for 30 s is closed.
      const a = yield* peer()
      const late = yield* a.register({ at: signedAt })
      expect(late.payload.code).toBe("INVALID_PROOF")
      expect((yield* a.register()).type).toBe("registered")
    })))

  test("offline queue: a recipient that registers while the message commits still gets it", () => {
    // The first commit waits at a gate, so the recipient registers (and reads its empty queue) in between.
    const { entered, gate, gated } = gatedCommits()
    return scenario({}, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const b = yield* peer()
      const h = hash()
      const sending = yield* Effect.fork(a.sendTo(b.key, h))
      yield* Deferred.await(entered)
      expect((yield* b.register()).type).toBe("registered")
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(sending)).toMatchObject({ type: "message_queued", payload: { messageHash: h } })
      expect(yield* b.next()).toMatchObject({ type: "message", payload: { from: a.key, messageHash: h, offline: true } })
    }), undefined, gated)
  })

  test("a sender that leaves while its message commits: the live recipient still gets it", () => {
    const { entered, gate, gated } = gatedCommits()
    return scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair
      const h = hash()
      yield* a.frame("send", { to: b.key, encrypted: encrypted("bye"), messageHash: h })
      yield* Deferred.await(entered)
      yield* a.socket.close
      yield* TestServices.provideLive(Effect.sleep("50 millis"))
      yield* Deferred.succeed(gate, undefined)
      expect(yield* b.next()).toMatchObject({ type: "message", payload: { from: a.key, messageHash: h, offline: false } })
    }), undefined, gated)
  })

  test("a sender that leaves while its commit hangs: its session closes 10 s later all the same (peer_left), not when the database answers", () => {
    const { entered, gate, gated } = gatedCommits()
    return scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair
      yield* a.frame("send", { to: b.key, encrypted: encrypted("stuck"), messageHash: hash() })
      yield* Deferred.await(entered)
      const closedAt = yield* Clock.currentTimeMillis
      yield* a.socket.close
      // The signal that the session's cleanup waits for the send: its 10 s timer is on the clock.
      while (!Chunk.some(yield* TestClock.sleeps(), (at) => at === closedAt + 10_000)) yield* Effect.yieldNow()
      yield* TestClock.adjust(9_999)
      yield* b.nothing()
      yield* TestClock.adjust(1)
      expect(yield* b.next()).toMatchObject({ type: "peer_left", payload: { publicKey: a.key } })
      // The commit hangs until now: it ends here so that the node can stop (whatever the test's outcome).
    }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined))), undefined, gated)
  })

  test("a burst past the session's pipeline and its rate limit: each send answered once, the accepted delivered in order", () => {
    // Commits wait at the gate: the first 64 sends are accepted in the socket's callback, the 65th finds
    // the pipeline full and the rest wait behind it in the inbox, where the burst (150) runs out.
    const { entered, gate, gated } = gatedCommits()
    return scenario({ limits: { rateLimitBurst: 150, rateLimitPerSec: 1 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      const hashes = Array.from({ length: 200 }, () => hash())
      for (const h of hashes.slice(0, 100)) yield* a.frame("send", { to: b.key, encrypted: encrypted(h), messageHash: h })
      yield* Deferred.await(entered)
      yield* Deferred.succeed(gate, undefined)
      for (const h of hashes.slice(100)) yield* a.frame("send", { to: b.key, encrypted: encrypted(h), messageHash: h })
      const replies = new Map<string, Frame>()
      while (replies.size < 200) {
        const f = yield* a.next()
        expect(replies.has(String(f.requestId))).toBe(false)
        replies.set(String(f.requestId), f)
      }
      const outcome = (i: number) => replies.get(`r${i + 2}`)
      const sent = hashes.filter((_, i) => outcome(i)?.type === "message_sent")
      expect(sent).toEqual(hashes.slice(0, 150))
      for (let i = 150; i < 200; i++) expect(outcome(i)?.payload.code).toBe("RATE_LIMITED")
      for (const h of sent) expect((yield* b.next()).payload.messageHash).toBe(h)
      yield* b.nothing()
      yield* a.nothing()
    }), undefined, gated)
  })

  test("offline queue: messages to an offline key are delivered on its registration, oldest first", () =>
    scenario({}, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const b0 = yield* peer()
      const hashes = [hash(), hash(), hash()]
      for (const h of hashes) {
        expect(yield* a.sendTo(b0.key, h)).toMatchObject({ type: "message_queued", payload: { messageHash: h, status: "queued" } })
        yield* TestClock.adjust("1 second")
      }
      const reg = yield* b0.register()
      expect(reg.type).toBe("registered")
      for (const h of hashes) {
        const m = yield* b0.next()
        expect(m).toMatchObject({ type: "message", payload: { from: a.key, messageHash: h, offline: true } })
        expect(m.requestId).toBeUndefined()
      }
      expect(yield* a.next()).toMatchObject({ type: "peer_joined", payload: { publicKey: b0.key } })
      // Handed over once: a second session of b does not get them again.
      const b1 = yield* peer(b0.id)
      yield* b1.register()
      yield* b1.nothing()
      const page = yield* b1.history(a.key)
      expect(page.payload.messages.map((m: any) => m.deliveryStatus)).toEqual(["sent", "sent", "sent"])
    })))

  test("several sessions per key: live messages reach every session; presence counts keys", () =>
    scenario({ limits: { maxSessionsPerKey: 2 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      const b2 = yield* peer(b.id)
      expect((yield* b2.register()).type).toBe("registered")
      yield* a.nothing() // no second peer_joined for the same key
      const h = hash()
      expect((yield* a.sendTo(b.key, h)).type).toBe("message_sent")
      expect((yield* b.next()).payload.messageHash).toBe(h)
      expect((yield* b2.next()).payload.messageHash).toBe(h)
      // A third device evicts the oldest with 4001.
      const b3 = yield* peer(b.id)
      expect((yield* b3.register()).type).toBe("registered")
      expect((yield* b.socket.closed).code).toBe(4001)
      yield* a.nothing()
      yield* b2.socket.close
      yield* a.nothing()
      yield* b3.socket.close
      expect(yield* a.next()).toMatchObject({ type: "peer_left", payload: { publicKey: b.key } })
    })))

  test("slow consumer: a recipient that stops reading loses nothing and slows no one", () =>
    scenario({ sessionOutbox: 16, limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      const c = yield* peer()
      yield* c.register()
      yield* a.next()
      yield* b.next()
      yield* b.socket.pause
      const sent: Array<string> = []
      for (let i = 0; i < 60; i++) {
        const h = hash()
        sent.push(h)
        const r = yield* a.sendTo(b.key, h)
        expect(["message_sent", "message_queued"]).toContain(r.type)
        // Another recipient is not slowed down.
        const h2 = hash()
        expect((yield* a.sendTo(c.key, h2)).type).toBe("message_sent")
        expect((yield* c.next()).payload.messageHash).toBe(h2)
      }
      yield* b.socket.resume
      const got = new Set<string>()
      while (got.size < sent.length) {
        const m = yield* b.next()
        expect(m.type).toBe("message")
        expect(got.has(m.payload.messageHash)).toBe(false)
        got.add(m.payload.messageHash)
      }
      expect([...got].sort()).toEqual([...sent].sort())
      yield* b.nothing()
    })))
})

describe("outbox byte budget", () => {
  test("live messages for a stalled recipient stop at the budget and wait in storage", () =>
    scenario({ sessionOutboxBytes: 20_000, limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }, Effect.gen(function*() {
      const { a, b } = yield* pair
      yield* b.socket.pause
      const big = "x".repeat(3000) // ~4 KB frames once base64-encoded
      const replies: Array<string> = []
      const sent: Array<string> = []
      for (let i = 0; i < 12; i++) {
        const h = hash()
        sent.push(h)
        replies.push((yield* a.sendTo(b.key, h, big)).type)
      }
      // One frame in the (paused) socket and at most 20 KB in the outbox; the count limit (512) is far.
      const live = replies.filter((t) => t === "message_sent").length
      expect(live).toBeGreaterThanOrEqual(2)
      expect(live).toBeLessThanOrEqual(6)
      expect(replies.slice(live).every((t) => t === "message_queued")).toBe(true)
      yield* b.socket.resume
      const got: Array<string> = []
      while (got.length < sent.length) got.push((yield* b.next()).payload.messageHash)
      expect([...got].sort()).toEqual([...sent].sort())
      yield* b.nothing()
    })))
})

describe("garbage collection on the Clock", () => {
  test("queued messages expire after OFFLINE_TTL: failed, out of history and of the pair quota", () =>
    scenario({ offlineTtlMillis: 60_000, limits: { offlineQueuePerPair: 2 } }, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const bId = identity()
      expect((yield* a.sendTo(bId.key)).type).toBe("message_queued")
      expect((yield* a.sendTo(bId.key)).type).toBe("message_queued")
      expect((yield* a.sendTo(bId.key)).payload.code).toBe("RATE_LIMITED")
      yield* TestClock.adjust("61 seconds")
      // The sweep runs every ttl/10 on the clock; give its storage write a moment.
      yield* TestClock.adjust("6 seconds")
      yield* Effect.sleep(0)
      let ok = false
      for (let i = 0; i < 50 && !ok; i++) {
        ok = (yield* a.history(bId.key)).payload.messages.length === 0
        if (!ok) yield* TestServices.provideLive(Effect.sleep(20))
      }
      expect(ok).toBe(true)
      expect((yield* a.sendTo(bId.key)).type).toBe("message_queued")
      // Connected now: a socket that has not registered for 30 s is closed.
      const b = yield* peer(bId)
      yield* b.register()
      const m = yield* b.next()
      expect(m.payload.offline).toBe(true)
      yield* b.nothing()
    })))

  test("rate-limit, replay and per-address state is pruned as time passes", () =>
    scenario({ proofWindowMillis: 10_000 }, Effect.gen(function*() {
      const rate = yield* RateLimits
      const replay = yield* ReplayGuard
      const address = yield* AddressLimits
      const peers = []
      for (let i = 0; i < 5; i++) {
        const p = yield* peer()
        yield* p.register()
        peers.push(p)
      }
      yield* peers[0]!.sendTo(peers[1]!.key)
      expect(yield* rate.size).toBe(1)
      expect(yield* replay.size).toBe(5)
      expect((yield* address.size).buckets).toBe(1)
      yield* TestClock.adjust("2 minutes")
      yield* TestServices.provideLive(Effect.sleep(50))
      expect(yield* rate.size).toBe(0)
      expect(yield* replay.size).toBe(0)
      expect((yield* address.size).buckets).toBe(0)
    })))
})

describe("per-address limits", () => {
  test("connections past the cap are refused; registrations past the bucket are RATE_LIMITED", () =>
    scenario({ maxConnectionsPerAddress: 3, registrationBurstPerAddress: 2, registrationRatePerAddress: 1 }, Effect.gen(function*() {
      const ps = []
      for (let i = 0; i < 3; i++) ps.push(yield* peer(undefined, "10.0.0.1"))
      const fourth = yield* peer(undefined, "10.0.0.1")
      expect(yield* fourth.socket.closed).toEqual({ code: 1008, reason: "Too many connections from this address" })
      const other = yield* peer(undefined, "10.0.0.2")
      expect((yield* other.register()).type).toBe("registered")
      expect((yield* ps[0]!.register()).type).toBe("registered")
      expect((yield* ps[1]!.register()).type).toBe("registered")
      expect((yield* ps[2]!.register()).payload).toEqual({ code: "RATE_LIMITED", message: "Too many registrations from this address" })
      yield* TestClock.adjust("1 second")
      expect((yield* ps[2]!.register()).type).toBe("registered")
      // A closed connection frees its slot.
      yield* ps[0]!.socket.close
      const again = yield* peer(undefined, "10.0.0.1")
      yield* again.nothing()
    })))
})
