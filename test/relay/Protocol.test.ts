import { describe, expect, test } from "bun:test"
import { Effect, TestClock } from "effect"
import { encrypted, hash, peer, scenario } from "../support/TestNode.ts"

const pair = (opts: { aCaps?: Array<string>; bCaps?: Array<string> } = {}) =>
  Effect.gen(function*() {
    const a = yield* peer()
    const b = yield* peer()
    yield* a.register(opts.aCaps ? { capabilities: opts.aCaps } : {})
    yield* b.register(opts.bCaps ? { capabilities: opts.bCaps } : {})
    yield* a.next()
    return { a, b }
  })

describe("L2PS protocol on NodeCore (in memory)", () => {
  test("replies echo requestId verbatim; unsolicited frames never carry one; no requestId, none back", () =>
    scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair()
      yield* a.socket.send(JSON.stringify({ type: "discover", payload: {}, timestamp: 0, requestId: 42 }))
      expect((yield* a.next()).requestId).toBe(42)
      yield* a.socket.send(JSON.stringify({ type: "discover", payload: {}, timestamp: 0 }))
      const bare = yield* a.next()
      expect(bare.type).toBe("discover_response")
      expect("requestId" in bare).toBe(false)
      yield* a.socket.send(JSON.stringify({ type: "nope", payload: {}, requestId: "x-1" }))
      expect(yield* a.next()).toMatchObject({ type: "error", requestId: "x-1", payload: { code: "INVALID_MESSAGE", message: "Unknown type: nope" } })
      yield* a.sendTo(b.key)
      const m = yield* b.next()
      expect(m.type).toBe("message")
      expect("requestId" in m).toBe(false)
    })))

  test("a retried send returns the original outcome and is stored and delivered once; a hash is unique per sender", () =>
    scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair()
      const h = hash()
      expect((yield* a.sendTo(b.key, h)).type).toBe("message_sent")
      yield* b.socket.close
      // b is offline now, yet the retry reports what the first send did.
      expect(yield* a.sendTo(b.key, h)).toMatchObject({ type: "message_sent", payload: { messageHash: h, l2psStatus: "submitted" } })
      // A hash is the sender's own: another sender's message with the same hash is a message of its own.
      const c = yield* peer()
      yield* c.register()
      expect(yield* c.sendTo(b.key, h)).toMatchObject({ type: "message_queued", payload: { messageHash: h } })
      // The same sender reusing it for someone else is told so, rather than sending nothing.
      expect((yield* a.sendTo(c.key, h)).payload).toEqual({
        code: "INVALID_MESSAGE",
        message: "Duplicate message: this messageHash was already sent to another recipient"
      })
      yield* c.nothing()
      const b2 = yield* peer(b.id)
      yield* b2.register()
      expect(yield* b2.next()).toMatchObject({ type: "message", payload: { from: c.key, messageHash: h, offline: true } })
      yield* b2.nothing()
      const page = yield* a.history(b.key)
      expect(page.payload.messages.map((m: any) => m.messageHash)).toEqual([h])
    })))

  test("history pages losslessly even when many messages arrive in the same millisecond", () =>
    scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair()
      const sent: Array<string> = []
      for (let i = 0; i < 7; i++) {
        const h = hash()
        sent.push(h)
        yield* (i % 2 === 0 ? a.sendTo(b.key, h) : b.sendTo(a.key, h))
      }
      const seen: Array<string> = []
      let before: number | undefined
      let pages = 0
      while (true) {
        const r = yield* b.history(a.key, before === undefined ? { limit: 3 } : { limit: 3, before })
        pages++
        const msgs = r.payload.messages
        for (const m of msgs) seen.push(m.messageHash)
        if (!r.payload.hasMore) break
        before = msgs[msgs.length - 1].timestamp
      }
      // One ms holds them all (at most SAME_MILLI_MAX share one): a page never ends inside such a group,
      // so the first page holds the whole group, past `limit`, and nothing is skipped or repeated.
      expect(pages).toBe(1)
      expect(seen).toEqual([...sent].reverse())
      const first = (yield* a.history(b.key, { limit: 1 })).payload.messages[0]
      expect(first).toMatchObject({ from: a.key, to: b.key, l2psUid: "default", l2psTxHash: null, status: "delivered", deliveryStatus: "delivered", l2psStatus: "l2ps_pending", encrypted: encrypted() })
    })))

  test("ack capability: pending until acknowledged, redelivered otherwise, receipts to the sender", () =>
    scenario({}, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const offline = peer()
      const b = yield* offline
      const [h1, h2] = [hash(), hash()]
      expect((yield* a.sendTo(b.key, h1)).type).toBe("message_queued")
      expect((yield* a.sendTo(b.key, h2)).type).toBe("message_queued")
      yield* b.register({ capabilities: ["ack"] })
      expect((yield* b.next()).payload.messageHash).toBe(h1)
      expect((yield* b.next()).payload.messageHash).toBe(h2)
      yield* a.next() // peer_joined
      yield* b.socket.close
      yield* a.next() // peer_left
      // Not acknowledged: delivered again on the next registration.
      const b2 = yield* peer(b.id)
      yield* b2.register({ capabilities: ["ack"] })
      expect((yield* b2.next()).payload.messageHash).toBe(h1)
      expect((yield* b2.next()).payload.messageHash).toBe(h2)
      yield* a.next()
      const ack = yield* b2.request("ack", { messageHashes: [h1] })
      expect(ack).toMatchObject({ type: "ack_response", payload: { messageHashes: [h1] } })
      expect(yield* a.next()).toMatchObject({ type: "message_delivered", payload: { messageHash: h1 } })
      // A live message to an ack session also waits for its ack.
      const h3 = hash()
      expect((yield* a.sendTo(b.key, h3)).type).toBe("message_sent")
      expect((yield* b2.next()).payload).toMatchObject({ messageHash: h3, offline: false })
      yield* b2.socket.close
      yield* a.next()
      const b3 = yield* peer(b.id)
      yield* b3.register({ capabilities: ["ack"] })
      expect((yield* b3.next()).payload.messageHash).toBe(h2)
      expect((yield* b3.next()).payload.messageHash).toBe(h3)
      yield* b3.nothing()
      const statuses = (yield* a.history(b.key)).payload.messages.map((m: any) => [m.messageHash, m.deliveryStatus])
      expect(statuses).toEqual([[h3, "sent"], [h2, "sent"], [h1, "delivered"]])
    })))

  test("networks are isolated: discovery, lookup, presence and delivery stay inside a uid", () =>
    scenario({ networks: ["alpha", "beta"] }, Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register({ l2psUid: "alpha" })
      yield* b.register({ l2psUid: "beta" })
      yield* a.nothing()
      expect((yield* a.request("discover", {})).payload.peers).toEqual([a.key])
      expect((yield* a.request("request_public_key", { targetId: b.key })).payload).toEqual({ targetId: b.key, publicKey: null })
      expect((yield* a.sendTo(b.key)).type).toBe("message_queued")
      yield* b.nothing()
      const c = yield* peer()
      const r = yield* c.register({ l2psUid: "gamma" })
      expect(r.payload).toEqual({ code: "L2PS_NOT_FOUND", message: "L2PS network gamma not found" })
    })))

  test("keys: upper case is accepted, echoed as sent in registered, and the same peer as lower case", () =>
    scenario({}, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const b = yield* peer()
      const upper = b.key.toUpperCase()
      yield* TestClock.adjust(1)
      const ts = 1 + (yield* TestClock.currentTimeMillis)
      yield* TestClock.adjust(1)
      const reg = yield* b.request("register", { publicKey: upper, l2psUid: "default", proof: b.id.sign(`register:${upper}:${ts}`) }, { timestamp: ts })
      expect(reg.payload.publicKey).toBe(upper)
      expect(yield* a.next()).toMatchObject({ type: "peer_joined", payload: { publicKey: b.key } })
      expect((yield* a.request("request_public_key", { targetId: upper })).payload.publicKey).toBe(b.key)
      expect((yield* a.sendTo(upper)).type).toBe("message_sent")
      expect((yield* b.next()).type).toBe("message")
    })))

  test("a live message still in the outbox when the socket dies goes back to the queue", () =>
    scenario({}, Effect.gen(function*() {
      const { a, b } = yield* pair()
      yield* b.socket.pause
      const first = hash()
      yield* a.sendTo(b.key, first) // written, then the writer waits for drain
      const second = hash()
      expect((yield* a.sendTo(b.key, second)).type).toBe("message_sent") // sits in the outbox
      yield* b.socket.close
      yield* a.next() // peer_left
      const b2 = yield* peer(b.id)
      yield* b2.register()
      const m = yield* b2.next()
      expect(m.payload).toMatchObject({ messageHash: second, offline: true })
      yield* b2.nothing()
    })))
})
