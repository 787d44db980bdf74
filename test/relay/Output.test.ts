/**
 * Finding 3 of the security review on TestClock: what a session holds for a client that does not read
 * is bounded in bytes (its own replies too), and a socket that stays backed up is let go, on both
 * servers, with the live messages it never got back in storage.
 */
import { describe, expect, test } from "bun:test"
import { Cause, Chunk, Effect, Fiber, TestClock, TestServices } from "effect"
import { legacyClient, legacyScenario, registered, sealed } from "../legacy/LegacyTestClient.ts"
import { hash, peer, scenario } from "../support/TestNode.ts"

const TIMEOUT = 30_000
/** A moment of live time for the node's fibers to run after the clock moved. */
/** Failures with their pretty cause (a FiberFailure shows nothing). */
const shown = <A, E, R>(e: Effect.Effect<A, E, R>) =>
  e.pipe(Effect.tapErrorCause((c) => Effect.sync(() => console.error(Cause.pretty(c)))))
const settle = TestServices.provideLive(Effect.sleep("30 millis"))

/** Watches a socket's close; `closed()` tells whether it happened yet, `close` awaits it (live time). */
const watchClose = (closed: Effect.Effect<{ readonly code: number; readonly reason: string }>) =>
  Effect.map(Effect.fork(closed), (fiber) => ({
    closed: () => Effect.map(Fiber.poll(fiber), (o) => o._tag === "Some"),
    close: Fiber.join(fiber).pipe(Effect.timeout(1000), TestServices.provideLive)
  }))

describe("a client that stops reading", () => {
  test("L2PS: its own replies are bounded in bytes: a client that keeps asking without reading is cut off, not buffered", () =>
    scenario({ sessionOutputBytes: 4_000, sessionInbox: 16 }, Effect.gen(function*() {
      const a = yield* peer()
      yield* a.register()
      yield* a.socket.pause
      // ~150 characters a reply: the outbox takes a few dozen, then its processor waits and the inbox fills.
      // Paced, so that the session handles each one before the next arrives (its inbox never fills on its own).
      for (let i = 0; i < 150; i++) {
        yield* a.frame("discover", {})
        yield* TestServices.provideLive(Effect.sleep("2 millis"))
      }
      yield* settle
      const closed = yield* a.socket.closed.pipe(Effect.timeout(1000), TestServices.provideLive, Effect.option)
      expect(closed._tag).toBe("Some")
      if (closed._tag === "Some") expect(closed.value).toEqual({ code: 1008, reason: "Too many frames in flight" })
    })), TIMEOUT)

  test("L2PS: a socket backed up for STALLED_SOCKET_SECONDS is terminated; a slower reader is not; its unwritten messages wait in storage", () =>
    scenario({ stalledSocketMillis: 10_000 }, shown(Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register()
      yield* b.register()
      expect((yield* a.next()).type).toBe("peer_joined")
      const bClose = yield* watchClose(b.socket.closed)
      // Slow but alive: paused for less than the limit, it resumes and is served.
      yield* b.socket.pause
      const first = hash()
      expect((yield* a.sendTo(b.key, first)).type).toBe("message_sent")
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(yield* bClose.closed()).toBe(false)
      yield* b.socket.resume
      expect(yield* b.next()).toMatchObject({ type: "message", payload: { messageHash: first } })
      // Stalled: nothing taken for 10 s.
      yield* b.socket.pause
      const sent = [hash(), hash(), hash()]
      for (const h of sent) expect((yield* a.sendTo(b.key, h)).type).toBe("message_sent")
      yield* TestClock.adjust("5 seconds")
      yield* settle
      expect(yield* bClose.closed()).toBe(false)
      yield* TestClock.adjust("6 seconds")
      yield* settle
      expect(yield* bClose.close).toEqual({ code: 1006, reason: "" })
      expect(yield* a.next()).toMatchObject({ type: "peer_left", payload: { publicKey: b.key } })
      // What the memory socket took before it paused counts as read; the rest comes back from storage.
      const again = yield* peer(b.id)
      yield* again.register()
      const got = new Set<string>()
      for (;;) {
        const f = yield* again.next(500).pipe(Effect.catchAllDefect(() => Effect.succeed(undefined)))
        if (f === undefined) break
        if (f.type === "message") got.add(f.payload.messageHash)
      }
      const fromBefore = Chunk.toReadonlyArray(yield* b.socket.frames.takeAll)
      for (const t of fromBefore) {
        const f = JSON.parse(t)
        if (f.type === "message") got.add(f.payload.messageHash)
      }
      for (const h of sent) expect(got.has(h)).toBe(true)
    }))), TIMEOUT)

  test("legacy: its own replies are bounded in bytes: a client that keeps asking without reading is cut off, not buffered", () =>
    legacyScenario({ sessionOutputBytes: 4_000, sessionInbox: 16 }, shown(Effect.gen(function*() {
      const bob = yield* registered("bob")
      const closing = yield* watchClose(bob.socket.closed)
      yield* bob.socket.pause
      for (let i = 0; i < 150; i++) {
        yield* bob.send("discover", {})
        yield* TestServices.provideLive(Effect.sleep("2 millis"))
      }
      yield* settle
      expect(yield* closing.close).toEqual({ code: 1008, reason: "Too many frames in flight" })
    }))), TIMEOUT)

  test("legacy: a socket backed up for STALLED_SOCKET_SECONDS is terminated and its unwritten messages are delivered on its next registration", () =>
    legacyScenario({ stalledSocketMillis: 10_000 }, shown(Effect.gen(function*() {
      const bob = yield* registered("bob")
      const alice = yield* registered("alice")
      const bobClose = yield* watchClose(bob.socket.closed)
      yield* bob.socket.pause
      const texts = ["one", "two", "three"]
      for (const text of texts) yield* alice.message("bob", text)
      yield* settle
      yield* TestClock.adjust("5 seconds")
      yield* settle
      expect(yield* bobClose.closed()).toBe(false)
      yield* TestClock.adjust("6 seconds")
      yield* settle
      expect(yield* bobClose.close).toEqual({ code: 1006, reason: "" })
      const taken = Chunk.toReadonlyArray(yield* bob.socket.frames.takeAll).map((t) => JSON.parse(t))
      const back = yield* legacyClient(bob.id)
      expect((yield* back.register("bob")).payload.success).toBe(true)
      const rest = texts.filter((t) => !taken.some((f) => f.type === "message" && JSON.stringify(f.payload.message) === JSON.stringify(sealed(t))))
      for (const text of rest) expect(yield* back.next()).toMatchObject({ type: "message", payload: { message: sealed(text), fromId: "alice" } })
    }))), TIMEOUT)
})
