/**
 * Finding 7 of the security review (the L2PS part): storage had no bound per sender or per recipient.
 * One key queued ~9 GB an hour to fresh keys, and three throwaway keys queued 600 messages on one
 * victim. Now what waits undelivered is bounded in bytes per sender and per recipient, counted in
 * storage; expired messages are deleted, not only flagged.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, TestClock, TestServices } from "effect"
import { encrypted, identity, peer, scenario } from "../support/TestNode.ts"

/** What one `sendTo(…, text)` weighs: its payload's JSON text plus 1 KiB (README, SECURITY.md). */
const weight = (text = "x") => JSON.stringify(encrypted(text)).length + 1024
const W = weight()
const loose = { rateLimitBurst: 1000, rateLimitPerSec: 1000, epochQuota: 100_000 }

describe("offline byte quotas", () => {
  test("one key queuing to fresh keys stops at OFFLINE_BYTES_PER_SENDER; delivery frees room", () =>
    scenario({ limits: { ...loose, offlineBytesPerSender: 25 * W, offlineBytesPerRecipient: 1000 * W } }, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      const fresh = Array.from({ length: 26 }, () => identity())
      for (const k of fresh.slice(0, 25)) expect((yield* a.sendTo(k.key)).type).toBe("message_queued")
      const refused = yield* a.sendTo(fresh[25]!.key)
      expect(refused.payload).toEqual({
        code: "RATE_LIMITED",
        message: `Offline message limit reached (${25 * W} bytes waiting from this sender)`
      })
      // Reconnecting changes nothing: the count is in storage.
      yield* a.socket.close
      const again = yield* peer(a.id)
      yield* again.register()
      expect((yield* again.sendTo(fresh[25]!.key)).payload.code).toBe("RATE_LIMITED")
      // A recipient comes online and takes its message: one more fits.
      const r = yield* peer(fresh[0]!)
      yield* r.register()
      expect(yield* r.next()).toMatchObject({ type: "message", payload: { from: a.key, offline: true } })
      let sent = false
      for (let i = 0; i < 50 && !sent; i++) {
        const reply = yield* again.sendTo(fresh[25]!.key)
        sent = reply.type === "message_queued"
        if (!sent) yield* TestServices.provideLive(Effect.sleep(20))
      }
      expect(sent).toBe(true)
      expect((yield* again.sendTo(fresh[1]!.key)).payload.code).toBe("RATE_LIMITED")
    })))

  test("throwaway keys filling one victim stop at OFFLINE_BYTES_PER_RECIPIENT, counted in bytes", () =>
    scenario({ limits: { ...loose, offlineBytesPerSender: 1000 * W, offlineBytesPerRecipient: 12 * W } }, Effect.gen(function*() {
      const victim = identity()
      const throwaway = [yield* peer(), yield* peer(), yield* peer()]
      for (const t of throwaway) yield* t.register()
      for (const t of throwaway) for (let i = 0; i < 4; i++) expect((yield* t.sendTo(victim.key)).type).toBe("message_queued")
      const late = yield* peer()
      yield* late.register()
      expect((yield* late.sendTo(victim.key)).payload).toEqual({
        code: "RATE_LIMITED",
        message: `Offline message limit reached (${12 * W} bytes waiting for this recipient)`
      })
      // Others are not affected.
      expect((yield* late.sendTo(identity().key)).type).toBe("message_queued")
      // The victim reads its queue: room again, for a message of one message's weight but not for a larger one.
      const v = yield* peer(victim)
      yield* v.register()
      for (let i = 0; i < 12; i++) expect((yield* v.next()).type).toBe("message")
      yield* v.socket.close
      let queued = 0
      for (let i = 0; i < 50 && queued === 0; i++) {
        if ((yield* late.sendTo(victim.key, undefined, "y".repeat(3000))).type === "message_queued") queued++
        else yield* TestServices.provideLive(Effect.sleep(20))
      }
      expect(queued).toBe(1)
      const used = weight("y".repeat(3000))
      const room = Math.floor((12 * W - used) / W)
      for (let i = 0; i < room; i++) expect((yield* late.sendTo(victim.key)).type).toBe("message_queued")
      expect((yield* late.sendTo(victim.key)).payload.code).toBe("RATE_LIMITED")
    })))

  test("expired messages are deleted once batched, not only flagged; their bytes are free again", () =>
    scenario({
      offlineTtlMillis: 60_000,
      batchIntervalMillis: 1000,
      limits: { ...loose, offlineBytesPerSender: 3 * W, offlineBytesPerRecipient: 1000 * W }
    }, Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const a = yield* peer()
      yield* a.register()
      for (let i = 0; i < 3; i++) expect((yield* a.sendTo(identity().key)).type).toBe("message_queued")
      expect((yield* a.sendTo(identity().key)).payload.code).toBe("RATE_LIMITED")
      const rows = () => sql<{ n: string | number }>`SELECT count(*) AS n FROM l2ps_messages`.pipe(Effect.map((r) => Number(r[0]!.n)))
      expect(yield* rows()).toBe(3)
      // Past the TTL: the sweep (every ttl/10) expires them, the batcher takes them, the next sweep deletes them.
      let n = 3
      for (let i = 0; i < 100 && n > 0; i++) {
        yield* TestClock.adjust("6 seconds")
        yield* TestServices.provideLive(Effect.sleep(20))
        n = yield* rows()
      }
      expect(n).toBe(0)
      expect((yield* a.sendTo(identity().key)).type).toBe("message_queued")
    })))
})
