/**
 * Finding 5 of the security review: one socket must not slow everyone or push message time forward.
 * A refused send takes no timestamp and is charged to the connection's frame budget (a storm of
 * refusals closes the socket); a conversation's clock never runs more than 1 s ahead of the node's.
 */
import { describe, expect, test } from "bun:test"
import { Clock, Effect, TestServices } from "effect"
import { SAME_MILLI_MAX } from "../../src/domain/Timestamps.ts"
import { MAX_AHEAD_MILLIS } from "../../src/limits/ServerClock.ts"
import { Storage } from "../../src/storage/Storage.ts"
import { encrypted, type Frame, hash, identity, peer, scenario } from "../support/TestNode.ts"

const registered = Effect.gen(function*() {
  const p = yield* peer()
  expect((yield* p.register()).type).toBe("registered")
  return p
})

/** Replies to `n` frames sent without waiting, by requestId. */
const replies = (p: Effect.Effect.Success<typeof registered>, n: number) =>
  Effect.gen(function*() {
    const out = new Map<string, Frame>()
    while (out.size < n) {
      const f = yield* p.next()
      if (f.requestId !== undefined) out.set(String(f.requestId), f)
    }
    return out
  })

describe("send limits (security finding 5)", () => {
  test("refused sends take no timestamp: another conversation's message is stamped with the node's time", () =>
    scenario({ limits: { rateLimitBurst: 1, rateLimitPerSec: 1 } }, Effect.gen(function*() {
      const a = yield* registered
      const b = yield* registered
      const c = yield* registered
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      // 150 sends past a's rate limit: each refused (the budget's burst is 200).
      for (let i = 0; i < 150; i++) yield* a.frame("send", { to: b.key, encrypted: encrypted(), messageHash: hash() })
      const refused = yield* replies(a, 150)
      expect([...refused.values()].every((f) => f.payload.code === "RATE_LIMITED")).toBe(true)
      const now = yield* Clock.currentTimeMillis
      expect((yield* c.sendTo(b.key)).type).toBe("message_sent")
      let got: Frame
      do got = yield* b.next(); while (got.type !== "message" || got.payload.from !== c.key)
      expect(got.timestamp).toBe(now)
    })))

  test("a storm of refused sends closes the socket once it outruns the frame budget", () =>
    scenario({ connectionFrameBurst: 50, connectionFrameRate: 10, limits: { rateLimitBurst: 1, rateLimitPerSec: 1 } }, Effect.gen(function*() {
      const a = yield* registered
      const b = yield* registered
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      for (let i = 0; i < 120; i++) yield* a.frame("send", { to: b.key, encrypted: encrypted(), messageHash: hash() })
      const closed = yield* a.socket.closed.pipe(
        Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("the socket stayed open") }),
        TestServices.provideLive,
        Effect.orDie
      )
      expect(closed).toEqual({ code: 1008, reason: "Too many refused frames" })
      // b, and the node, are fine.
      const c = yield* registered
      expect((yield* c.sendTo(b.key)).type).toBe("message_sent")
    })))

  test("accepted sends are not capped by the frame budget: the per-key limits govern them", () =>
    scenario({ connectionFrameBurst: 20, connectionFrameRate: 1, limits: { rateLimitBurst: 100, rateLimitPerSec: 100 } }, Effect.gen(function*() {
      const a = yield* registered
      const b = yield* registered
      for (let i = 0; i < 60; i++) yield* a.frame("send", { to: b.key, encrypted: encrypted(), messageHash: hash() })
      const out = yield* replies(a, 60)
      expect([...out.values()].every((f) => f.type === "message_sent")).toBe(true)
    })))

  test("a conversation's clock never runs more than 1 s ahead; past it sends are refused, other conversations unaffected", () =>
    scenario({ commitBatchMax: 4096, limits: { rateLimitBurst: 20_000, rateLimitPerSec: 20_000, epochQuota: 100_000, offlineQueuePerPair: 20_000, offlineBytesPerSender: 2 ** 30, offlineBytesPerRecipient: 2 ** 30 } }, Effect.gen(function*() {
      const a = yield* registered
      const c = yield* registered
      const b = identity() // offline: its messages wait in storage
      const now = yield* Clock.currentTimeMillis
      // Up to SAME_MILLI_MAX a ms, from now to MAX_AHEAD_MILLIS ahead of it.
      const fit = SAME_MILLI_MAX * (MAX_AHEAD_MILLIS + 1)
      const n = fit + 100
      // In rounds the session's inbox holds; the clock stands still meanwhile.
      const out: Array<Frame> = []
      for (let round = 0; round < n; round += 100) {
        for (let i = round; i < Math.min(n, round + 100); i++) yield* a.frame("send", { to: b.key, encrypted: encrypted(), messageHash: hash() })
        out.push(...(yield* replies(a, Math.min(n, round + 100) - round)).values())
      }
      expect(yield* Clock.currentTimeMillis).toBe(now)
      const accepted = out.filter((f) => f.type === "message_queued").length
      const busy = out.filter((f) => f.payload.code === "RATE_LIMITED")
      expect(accepted).toBe(fit)
      expect(busy.length).toBe(n - accepted)
      expect(busy[0]!.payload.message).toContain("Too many messages in this conversation")
      expect((yield* c.sendTo(b.key)).type).toBe("message_queued")
      const storage = yield* Storage
      const stamps = (yield* storage.history("default", b.key, a.key, undefined, 2 * fit)).map((m) => m.timestamp)
      expect(stamps.length).toBe(accepted)
      expect(Math.max(...stamps) - now).toBeLessThanOrEqual(MAX_AHEAD_MILLIS)
      const perMilli = new Map<number, number>()
      for (const ts of stamps) perMilli.set(ts, (perMilli.get(ts) ?? 0) + 1)
      expect(Math.max(...perMilli.values())).toBe(SAME_MILLI_MAX)
      const other = yield* storage.history("default", b.key, c.key, undefined, 10)
      expect(other.map((m) => m.timestamp)).toEqual([now])
    })))
})
