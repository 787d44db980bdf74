/**
 * Copies (docs/PROTOCOL.md, "Copies"): a session registered with the "copies" capability is shown
 * live what its key's other sessions send; the sending session and sessions that never asked
 * (the SDK's peer) get nothing new, and a copy is no delivery.
 */
import { describe, expect, test } from "bun:test"
import { Effect, TestServices } from "effect"
import { encrypted, hash, identity, peer, scenario } from "../support/TestNode.ts"

describe("copies to the sender's other sessions", () => {
  test("only the sender's other sessions that opted in get a copy, live or queued alike; it is not acknowledgeable", () =>
    scenario({}, Effect.gen(function*() {
      const b = yield* peer()
      expect((yield* b.register({ capabilities: ["ack"] })).type).toBe("registered")
      const alice = identity()
      const a1 = yield* peer(alice)
      expect((yield* a1.register({ capabilities: ["ack", "copies"] })).type).toBe("registered")
      const a2 = yield* peer(alice)
      expect((yield* a2.register({ capabilities: ["ack", "copies"] })).type).toBe("registered")
      const plain = yield* peer(alice)
      expect((yield* plain.register()).type).toBe("registered")
      expect((yield* b.next()).type).toBe("peer_joined")

      const h = hash()
      expect((yield* a1.sendTo(b.key, h, "hello")).type).toBe("message_sent")
      const got = yield* b.next()
      expect(got.type).toBe("message")
      expect(got.payload).toEqual({ from: alice.key, encrypted: encrypted("hello"), messageHash: h, offline: false })

      const copy = yield* a2.next()
      expect(copy.type).toBe("message")
      expect(copy.payload).toEqual({ from: alice.key, to: b.key, encrypted: encrypted("hello"), messageHash: h, offline: false })
      expect(copy.timestamp).toBe(got.timestamp)
      // Never the sending connection, never a session that did not ask.
      yield* a1.nothing(200)
      yield* plain.nothing(0)

      // A copy is no delivery: acknowledged by a2 it counts for nothing, and the sender learns nothing.
      const acked = yield* a2.request("ack", { messageHashes: [h] })
      expect(acked.payload.messageHashes).toEqual([])
      yield* a1.nothing(100)

      // A message to an offline key is stored; the copy is shown live all the same.
      const offline = identity()
      const q = hash()
      expect((yield* a2.sendTo(offline.key, q, "later")).type).toBe("message_queued")
      const copy2 = yield* a1.next()
      expect(copy2.payload).toMatchObject({ from: alice.key, to: offline.key, messageHash: q })
      yield* a2.nothing(100)
      yield* plain.nothing(0)
    })))

  test("a copy that does not fit the session's outbox is dropped, never queued: the sends all go through", () =>
    scenario({ sessionOutbox: 16, limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }, Effect.gen(function*() {
      const b = yield* peer()
      expect((yield* b.register()).type).toBe("registered")
      const alice = identity()
      const a1 = yield* peer(alice)
      expect((yield* a1.register({ capabilities: ["copies"] })).type).toBe("registered")
      const a2 = yield* peer(alice)
      expect((yield* a2.register({ capabilities: ["copies"] })).type).toBe("registered")
      expect((yield* b.next()).type).toBe("peer_joined")
      // a2 stops reading: its outbox fills with the first copies, the rest are dropped.
      yield* a2.socket.pause
      const sent: Array<string> = []
      for (let i = 0; i < 40; i++) {
        const h = hash()
        sent.push(h)
        expect((yield* a1.sendTo(b.key, h)).type).toBe("message_sent")
      }
      for (let i = 0; i < sent.length; i++) expect((yield* b.next()).payload.messageHash).toBe(sent[i])
      yield* a2.socket.resume
      // Once a2's outbox has drained, the next send's copy reaches it: after the copies that fitted, none of the rest.
      yield* TestServices.provideLive(Effect.sleep(300))
      const last = hash()
      expect((yield* a1.sendTo(b.key, last)).type).toBe("message_sent")
      const copies: Array<string> = []
      while (true) {
        const f = yield* a2.next()
        expect(f.type).toBe("message")
        expect(f.payload.to).toBe(b.key)
        if (f.payload.messageHash === last) break
        copies.push(f.payload.messageHash)
      }
      expect(copies.length).toBeGreaterThan(0)
      expect(copies.length).toBeLessThan(sent.length)
      // The first ones, in order; nothing of the rest came from a queue.
      expect(copies).toEqual(sent.slice(0, copies.length))
      // The history has them all.
      const h = yield* a2.history(b.key, { limit: 100 })
      expect(h.payload.messages.length).toBe(sent.length + 1)
    })))
})
