import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Metrics from "../internal/Metrics.ts"
import { addressGroup } from "../domain/IpAddress.ts"
import { SeenProofs } from "../internal/SeenProofs.ts"
import { supervise } from "../internal/supervise.ts"

/**
 * "busy": the cache is full and the claimant is among its big holders; "key" / "address": the claimant
 * holds its share of the cache already.
 */
export type ProofCheck = "fresh" | "expired" | "replayed" | "busy" | "key" | "address"

/** Above this many entries (by key and by address) a claimant counts as a big holder of a full cache. */
export const SMALL_HOLDER = 16

/**
 * Proof freshness and single use: a (kind, key, timestamp) triple is accepted once inside the window.
 * Every proof remembered takes a slot of a node-wide cache until its window passes, so the cache is
 * shared fairly: a key and an address hold at most their caps, a proof dated ahead of the node's clock
 * by more than a small skew is refused (it would hold its slot that much longer), and a full cache still
 * takes the proofs of small holders (within a reserve of a quarter of its size) and refuses the rest.
 */
export class ReplayGuard extends Context.Tag("im/ReplayGuard")<ReplayGuard, {
  /** Whether the timestamp lies inside the window of the node's clock (at most the skew ahead). */
  readonly inWindow: (timestamp: number) => Effect.Effect<boolean>
  /** Records a verified proof of `key` from `address`; anything but "fresh" refuses it. */
  readonly claim: (kind: string, key: string, timestamp: number, address: string) => Effect.Effect<ProofCheck>
  readonly size: Effect.Effect<number>
}>() {}

interface Entry {
  readonly expiry: number
  readonly key: string
  readonly address: string
}

const take = (counts: Map<string, number>, id: string) => {
  const n = counts.get(id)! - 1
  if (n === 0) counts.delete(id)
  else counts.set(id, n)
}

export const layer: Layer.Layer<ReplayGuard, never, NodeConfig> = Layer.scoped(
  ReplayGuard,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const window = cfg.proofWindowMillis
    const skew = Math.min(cfg.proofFutureSkewMillis, window)
    const max = cfg.replayCacheMax
    const reserve = Math.max(SMALL_HOLDER, Math.floor(max / 4))
    const seen = new Map<string, Entry>()
    const byKey = new Map<string, number>()
    const byAddress = new Map<string, number>()
    Metrics.replayCacheCapacity.unsafeUpdate(max, [])
    const fill = () => Metrics.replayCacheEntries.unsafeUpdate(seen.size, [])
    fill()
    const prune = Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, e] of seen) {
        if (e.expiry >= now) continue
        seen.delete(id)
        take(byKey, e.key)
        take(byAddress, e.address)
      }
      fill()
    })
    yield* supervise("replay-guard/prune", Effect.repeat(prune, Schedule.spaced(Math.max(1000, Math.floor(window / 4)))))
    const fits = (now: number, timestamp: number) => timestamp >= now - window && timestamp <= now + skew
    const claimHere = (now: number, kind: string, key: string, timestamp: number, remote: string): ProofCheck => {
      if (!fits(now, timestamp)) return "expired"
      // An IPv6 client holds a /64: counted as one address, like the connection limits.
      const address = addressGroup(remote)
      const id = `${kind}:${key}:${timestamp}`
      if (seen.has(id)) return "replayed"
      const ofKey = byKey.get(key) ?? 0
      const ofAddress = byAddress.get(address) ?? 0
      if (ofKey >= cfg.replayPerKeyMax) return "key"
      if (ofAddress >= cfg.replayPerAddressMax) return "address"
      if (seen.size >= max && (ofKey >= SMALL_HOLDER || ofAddress >= SMALL_HOLDER || seen.size >= max + reserve)) {
        return "busy"
      }
      seen.set(id, { expiry: timestamp + window, key, address })
      byKey.set(key, ofKey + 1)
      byAddress.set(address, ofAddress + 1)
      fill()
      return "fresh"
    }
    // Nodes sharing a database also ask it, after their own checks (a local replay costs no round trip).
    const shared = yield* Effect.serviceOption(SeenProofs)
    return {
      size: Effect.sync(() => seen.size),
      inWindow: (timestamp) => Effect.map(Clock.currentTimeMillis, (now) => fits(now, timestamp)),
      claim: (kind, key, timestamp, remote) =>
        Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<ProofCheck> => {
          const local = claimHere(now, kind, key, timestamp, remote)
          if (local !== "fresh" || Option.isNone(shared)) return Effect.succeed(local)
          return shared.value.claim(`${kind}:${key}:${timestamp}`, timestamp + window).pipe(
            Effect.map((first): ProofCheck => (first ? "fresh" : "replayed")),
            // Unknown is refused: a proof that might be a replay is not accepted.
            Effect.catchAll((cause) => Effect.as(Effect.logWarning("shared proof record unavailable", cause), "busy" as const))
          )
        })
    }
  })
)


