/**
 * Finding 2 of the security review: the node-wide cache of used proofs could be filled by one party
 * (history proofs of its own free keys, dated ahead so that they stay longest), after which every
 * registration on the node was refused. Now a key and an address hold at most their caps, proofs dated
 * more than the skew ahead are refused, and a full cache refuses its big holders only.
 */
import { describe, expect, test } from "bun:test"
import { Clock, Effect, TestClock } from "effect"
import * as Metrics from "../../src/internal/Metrics.ts"
import { type Identity, identity, peer, scenario, scenarioAt } from "../support/TestNode.ts"

const config = {
  replayCacheMax: 60,
  replayPerKeyMax: 20,
  replayPerAddressMax: 40,
  proofFutureSkewMillis: 30_000,
  registrationBurstPerAddress: 1000
}

/** A history request whose proof is dated `at`. */
const historyAt = (p: Effect.Effect.Success<ReturnType<typeof peer>>, id: Identity, peerKey: string, at: number) =>
  p.request("history", { peerKey, proof: id.sign(`history:${peerKey}:${at}`) }, { timestamp: at })

describe("replay cache (security finding 2)", () => {
  test("one party cannot fill the proof cache and stop everyone's registration", () =>
    // An hour in: the proofs dated up to 30 s back are in the past of a clock that started at 0.
    scenarioAt(3_600_000, config, Effect.gen(function*() {
      const other = identity().key
      const attacker = (address: string) =>
        Effect.gen(function*() {
          const id = identity()
          const p = yield* peer(id, address)
          return { id, p, registered: (yield* p.register()).type === "registered" }
        })

      // Dated 290 s ahead: it would hold its slot almost 10 minutes. Refused beyond the 30 s skew.
      const first = yield* attacker("6.6.6.1")
      expect(first.registered).toBe(true)
      const now = yield* Clock.currentTimeMillis
      const ahead = yield* historyAt(first.p, first.id, other, now + 290_000)
      expect(ahead.payload.code).toBe("INVALID_PROOF")
      expect(ahead.payload.message).toContain("at most 30 s ahead")
      expect((yield* historyAt(first.p, first.id, other, now + 29_000)).type).toBe("history_response")

      // Each key holds at most 20 proofs, each address 40: the attacker's first address is full with two keys.
      let refusedForKey = ""
      for (let i = 0; i < 30 && refusedForKey === ""; i++) {
        const r = yield* historyAt(first.p, first.id, other, now - 1 - i)
        if (r.type !== "history_response") refusedForKey = r.payload.message
      }
      expect(refusedForKey).toBe("Too many proofs for this key, try again shortly")
      const second = yield* attacker("6.6.6.1")
      for (let i = 0; i < 19; i++) expect((yield* historyAt(second.p, second.id, other, now - 1 - i)).type).toBe("history_response")
      const third = yield* attacker("6.6.6.1")
      expect(third.registered).toBe(false)
      const refusedForAddress = yield* third.p.register()
      expect(refusedForAddress.payload).toEqual({ code: "RATE_LIMITED", message: "Too many proofs from this address, try again shortly" })

      // A second address takes the last 20 places: the cache is full.
      const fourth = yield* attacker("6.6.6.2")
      for (let i = 0; i < 19; i++) expect((yield* historyAt(fourth.p, fourth.id, other, now - 1 - i)).type).toBe("history_response")
      const text = yield* Metrics.render()
      expect(text).toContain("im_replay_cache_entries 60")
      expect(text).toContain("im_replay_cache_capacity 60")

      // Full: the big holders are refused…
      const fifth = yield* attacker("6.6.6.2")
      expect(fifth.registered).toBe(false)
      expect((yield* fifth.p.register()).payload).toEqual({ code: "RATE_LIMITED", message: "Too many proofs, try again shortly" })
      // …everyone else still registers and reads history.
      for (let i = 0; i < 5; i++) {
        const victim = identity()
        const v = yield* peer(victim, `10.0.0.${i + 1}`)
        expect((yield* v.register()).type).toBe("registered")
        expect((yield* v.history(other)).type).toBe("history_response")
      }
    })))

  test("the cache empties as the window passes", () =>
    scenario({ ...config, proofWindowMillis: 60_000 }, Effect.gen(function*() {
      const id = identity()
      const p = yield* peer(id, "6.6.6.3")
      expect((yield* p.register()).type).toBe("registered")
      const other = identity().key
      for (let i = 0; i < 19; i++) expect((yield* p.history(other)).type).toBe("history_response")
      expect((yield* p.history(other)).payload.code).toBe("RATE_LIMITED")
      yield* TestClock.adjust("2 minutes")
      expect((yield* p.history(other)).type).toBe("history_response")
    })))
})
