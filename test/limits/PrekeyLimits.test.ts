/**
 * Prekey requests per key (SECURITY.md 21): bundle fetches and uploads each have their own bucket per
 * key and network, refilled by the node's clock (TestClock here).
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer, TestClock, TestContext } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as Limits from "../../src/limits/PrekeyLimits.ts"
import { PrekeyLimits } from "../../src/limits/PrekeyLimits.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)

const run = <X>(body: Effect.Effect<X, never, PrekeyLimits>) =>
  Effect.runPromise(body.pipe(
    Effect.provide(Limits.layer.pipe(Layer.provide(NodeConfig.layer({
      bundleFetchBurst: 3,
      bundleFetchPerMinute: 6,
      prekeyPublishBurst: 1,
      prekeyPublishPerMinute: 2
    })))),
    Effect.scoped,
    Effect.provide(TestContext.TestContext)
  ))

describe("PrekeyLimits", () => {
  test("a key's fetches: its burst, then one per refill interval; other keys, networks and uploads apart", () =>
    run(Effect.gen(function*() {
      const limits = yield* PrekeyLimits
      const fetch = (key: string, uid = "net") => limits.take("fetch", uid, key)
      expect([yield* fetch(A), yield* fetch(A), yield* fetch(A), yield* fetch(A)]).toEqual([true, true, true, false])
      expect(yield* fetch(B)).toBe(true)
      expect(yield* fetch(A, "other")).toBe(true)
      expect(yield* limits.take("publish", "net", A)).toBe(true)
      expect(yield* limits.take("publish", "net", A)).toBe(false)
      // 6 a minute: one more every 10 s, not before
      yield* TestClock.adjust("9 seconds")
      expect(yield* fetch(A)).toBe(false)
      yield* TestClock.adjust("1 second")
      expect([yield* fetch(A), yield* fetch(A)]).toEqual([true, false])
      yield* TestClock.adjust("30 seconds")
      expect(yield* limits.take("publish", "net", A)).toBe(true)
      // full buckets are forgotten: state is bounded by who asked lately
      yield* TestClock.adjust("5 minutes")
      expect(yield* limits.size).toBe(0)
    })))
})
