/**
 * Finding 6 of the security review, its second half: an `ack` counts only for messages handed to the
 * session that sends it. Before, any session of the recipient's key could acknowledge any pending
 * message by its hash, one it never received included, and the sender got a delivery receipt for it.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { hash, peer, scenario } from "../support/TestNode.ts"

describe("ack scope (security finding 6)", () => {
  test("a message never handed to a session cannot be acknowledged by it: no receipt reaches the sender", () =>
    scenario({ sessionOutbox: 16, limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 } }, Effect.gen(function*() {
      const a = yield* peer()
      expect((yield* a.register()).type).toBe("registered")
      const b = yield* peer()
      expect((yield* b.register({ capabilities: ["ack"] })).type).toBe("registered")
      expect((yield* a.next()).type).toBe("peer_joined")
      // b stops reading: the first messages fill its outbox, the rest wait in storage, never handed to it.
      yield* b.socket.pause
      const sent: Array<string> = []
      for (let i = 0; i < 30; i++) {
        const h = hash()
        sent.push(h)
        expect(["message_sent", "message_queued"]).toContain((yield* a.sendTo(b.key, h)).type)
      }
      const never = sent[sent.length - 1]!
      // It acknowledges the last one, which it has not received.
      yield* b.frame("ack", { messageHashes: [never] })
      yield* a.nothing(300)
      // Once it reads, it gets everything and its acks count.
      yield* b.socket.resume
      const got: Array<string> = []
      while (got.length < sent.length) {
        const f = yield* b.next()
        if (f.type === "ack_response") expect(f.payload.messageHashes).toEqual([])
        else if (f.type === "message") got.push(f.payload.messageHash)
      }
      expect([...got].sort()).toEqual([...sent].sort())
      const reply = yield* b.request("ack", { messageHashes: sent })
      expect([...reply.payload.messageHashes].sort()).toEqual([...sent].sort())
      const receipts = new Set<string>()
      while (receipts.size < sent.length) {
        const f = yield* a.next()
        expect(f.type).toBe("message_delivered")
        receipts.add(f.payload.messageHash)
      }
    })))
})
