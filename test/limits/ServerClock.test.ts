/**
 * Message timestamps per conversation (SECURITY.md 5): never decreasing, at most SAME_MILLI_MAX equal,
 * never more than MAX_AHEAD_MILLIS ahead of the node's clock; conversations apart from each other.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { SAME_MILLI_MAX } from "../../src/domain/Timestamps.ts"
import { make, MAX_AHEAD_MILLIS } from "../../src/limits/ServerClock.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const C = "c".repeat(64)

describe("ServerClock", () => {
  test("a conversation hands out each ms SAME_MILLI_MAX times, then the next ms, up to MAX_AHEAD_MILLIS ahead", () => {
    const clock = make()
    const now = 1_000_000
    const stamps: Array<number> = []
    for (;;) {
      const ts = clock.unsafeNext("n", A, B, now)
      if (ts === undefined) break
      stamps.push(ts)
    }
    expect(stamps.length).toBe(SAME_MILLI_MAX * (MAX_AHEAD_MILLIS + 1))
    expect(stamps[0]).toBe(now)
    expect(stamps.at(-1)).toBe(now + MAX_AHEAD_MILLIS)
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]! - stamps[i - 1]!).toBe(i % SAME_MILLI_MAX === 0 ? 1 : 0)
    // Full (either way round): refused until the node's clock moves, each ms of it making room for one
    // more ms of messages; once it has caught up, the node's time again.
    expect(clock.unsafeNext("n", B, A, now)).toBeUndefined()
    const later: Array<number | undefined> = []
    for (let i = 0; i <= SAME_MILLI_MAX; i++) later.push(clock.unsafeNext("n", B, A, now + 1))
    expect(later).toEqual([...Array(SAME_MILLI_MAX).fill(now + MAX_AHEAD_MILLIS + 1), undefined])
    expect(clock.unsafeNext("n", A, B, now + MAX_AHEAD_MILLIS + 2)).toBe(now + MAX_AHEAD_MILLIS + 2)
  })

  test("other conversations (another peer, another network) keep the node's time", () => {
    const clock = make()
    const now = 5_000
    while (clock.unsafeNext("n", A, B, now) !== undefined);
    expect(clock.unsafeNext("n", A, C, now)).toBe(now)
    expect(clock.unsafeNext("m", A, B, now)).toBe(now)
  })

  test("a strict conversation (the legacy server's) never repeats a timestamp", () =>
    Effect.runPromise(Effect.gen(function*() {
      const clock = make()
      const seen = new Set<number>()
      for (let i = 0; i < 50; i++) {
        const ts = yield* clock.next("legacy", "alice", "bob", 1)
        expect(ts).toBeDefined()
        expect(seen.has(ts!)).toBe(false)
        seen.add(ts!)
      }
    })))
})
