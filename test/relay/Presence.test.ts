/**
 * Finding 17 of the security review on TestClock: a key that comes and goes many times a second does not
 * make the node write a presence frame per change to every session of its network; its changes are
 * rate-limited and coalesced per key, and its latest state is always announced.
 */
import { describe, expect, test } from "bun:test"
import { Chunk, Effect, TestClock, TestServices } from "effect"
import { identity, peer, scenario } from "../support/TestNode.ts"

const settle = TestServices.provideLive(Effect.sleep("20 millis"))

const presenceOf = (frames: ReadonlyArray<string>, key: string) =>
  frames.map((t) => JSON.parse(t)).filter((f) => (f.type === "peer_joined" || f.type === "peer_left") && f.payload.publicKey === key)
    .map((f) => f.type as string)

/** `flaps` register-and-close cycles of one key within a second, ending online when `endOnline`. */
const flapping = (flaps: number, endOnline: boolean) =>
  Effect.gen(function*() {
    const watcher = yield* peer()
    yield* watcher.register()
    const id = identity()
    for (let i = 0; i < flaps; i++) {
      const c = yield* peer(id)
      expect((yield* c.register()).type).toBe("registered")
      if (i === flaps - 1 && endOnline) break
      yield* c.socket.close
      yield* settle
      yield* TestClock.adjust(1000 / flaps)
    }
    const during = presenceOf(Chunk.toReadonlyArray(yield* watcher.socket.frames.takeAll), id.key)
    // A minute later the sweep has announced where the key ended.
    for (let i = 0; i < 60; i++) {
      yield* TestClock.adjust("1 second")
      yield* settle
    }
    const after = presenceOf(Chunk.toReadonlyArray(yield* watcher.socket.frames.takeAll), id.key)
    return { during, after, all: [...during, ...after] }
  })

describe("presence is rate-limited and coalesced per key", () => {
  test("a key flapping 100 times in a second: a bounded number of announcements, the last one says it left", () =>
    scenario({ registrationBurstPerAddress: 1000, presenceBurst: 4, presencePerMinute: 30 }, Effect.gen(function*() {
      const { during, all } = yield* flapping(100, false)
      // Unbounded, the watcher got 200 frames (100 joined, 100 left) within the second.
      expect(during.length).toBeLessThanOrEqual(4 + 1)
      expect(all.length).toBeLessThanOrEqual(4 + 2)
      expect(all.at(-1)).toBe("peer_left")
    })), 60_000)

  test("a key flapping 100 times in a second that stays: the last announcement says it joined", () =>
    scenario({ registrationBurstPerAddress: 1000, presenceBurst: 4, presencePerMinute: 30 }, Effect.gen(function*() {
      const { during, all } = yield* flapping(100, true)
      expect(during.length).toBeLessThanOrEqual(4 + 1)
      expect(all.length).toBeLessThanOrEqual(4 + 2)
      expect(all.at(-1)).toBe("peer_joined")
    })), 60_000)

  test("a key coming and going at a human pace is announced at once, every time", () =>
    scenario({ presenceBurst: 4, presencePerMinute: 30 }, Effect.gen(function*() {
      const watcher = yield* peer()
      yield* watcher.register()
      const id = identity()
      for (let i = 0; i < 6; i++) {
        const c = yield* peer(id)
        yield* c.register()
        yield* settle
        expect(presenceOf(Chunk.toReadonlyArray(yield* watcher.socket.frames.takeAll), id.key)).toEqual(["peer_joined"])
        yield* c.socket.close
        yield* settle
        expect(presenceOf(Chunk.toReadonlyArray(yield* watcher.socket.frames.takeAll), id.key)).toEqual(["peer_left"])
        yield* TestClock.adjust("10 seconds")
      }
    })), 60_000)
})
