/**
 * Prekey requests (SECURITY.md 24): bundle fetches per key and per address, uploads per key, each
 * bucket refilled by the node's clock (TestClock here).
 */
import { describe, expect, test } from "bun:test"
import { Effect, Layer, TestClock, TestContext } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as Limits from "../../src/limits/PrekeyLimits.ts"
import { PrekeyLimits } from "../../src/limits/PrekeyLimits.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const HERE = "10.0.0.1"

const run = <X>(body: Effect.Effect<X, never, PrekeyLimits>, config: Parameters<typeof NodeConfig.layer>[0] = {}) =>
  Effect.runPromise(body.pipe(
    Effect.provide(Limits.layer.pipe(Layer.provide(NodeConfig.layer({
      bundleFetchBurst: 3,
      bundleFetchPerMinute: 6,
      prekeyPublishBurst: 1,
      prekeyPublishPerMinute: 2,
      ...config
    })))),
    Effect.scoped,
    Effect.provide(TestContext.TestContext)
  ))

describe("PrekeyLimits", () => {
  test("a key's fetches: its burst, then one per refill interval; other keys, networks and uploads apart", () =>
    run(Effect.gen(function*() {
      const limits = yield* PrekeyLimits
      const fetch = (key: string, l2psUid = "net") => limits.take("fetch", { l2psUid, key, address: HERE })
      const publish = () => limits.take("publish", { l2psUid: "net", key: A, address: HERE })
      expect([yield* fetch(A), yield* fetch(A), yield* fetch(A), yield* fetch(A)]).toEqual(["ok", "ok", "ok", "key"])
      expect(yield* fetch(B)).toBe("ok")
      expect(yield* fetch(A, "other")).toBe("ok")
      expect([yield* publish(), yield* publish()]).toEqual(["ok", "key"])
      // 6 a minute: one more every 10 s, not before
      yield* TestClock.adjust("9 seconds")
      expect(yield* fetch(A)).toBe("key")
      yield* TestClock.adjust("1 second")
      expect([yield* fetch(A), yield* fetch(A)]).toEqual(["ok", "key"])
      yield* TestClock.adjust("30 seconds")
      expect(yield* publish()).toBe("ok")
      // full buckets are forgotten: state is bounded by who asked lately
      yield* TestClock.adjust("5 minutes")
      expect(yield* limits.size).toBe(0)
    })))

  test("an address's fetches, whatever keys it uses; a refusal there costs the key nothing", () =>
    run(Effect.gen(function*() {
      const limits = yield* PrekeyLimits
      const fetch = (key: string, address = HERE) => limits.take("fetch", { l2psUid: "net", key, address })
      const keys = Array.from({ length: 5 }, (_, i) => String(i).repeat(64))
      const verdicts = []
      for (const key of keys) verdicts.push(yield* fetch(key))
      expect(verdicts).toEqual(["ok", "ok", "ok", "ok", "address"])
      // another address (an IPv6 /64 counts as one) has its own bucket
      expect(yield* fetch(keys[4]!, "2001:db8::1")).toBe("ok")
      const sameNet = [yield* fetch(A, "2001:db8::2"), yield* fetch(A, "2001:db8::3"), yield* fetch(B, "2001:db8::4"), yield* fetch(B, "2001:db8::5")]
      expect(sameNet).toEqual(["ok", "ok", "ok", "address"])
      // a key refused for its address keeps its tokens: its three, from another address
      const C = "c".repeat(64)
      expect([yield* fetch(C), yield* fetch(C), yield* fetch(C)]).toEqual(["address", "address", "address"])
      expect([yield* fetch(C, "10.0.0.2"), yield* fetch(C, "10.0.0.2"), yield* fetch(C, "10.0.0.2")]).toEqual(["ok", "ok", "ok"])
    }), { bundleFetchBurstPerAddress: 4, bundleFetchPerMinutePerAddress: 4 }))
})
