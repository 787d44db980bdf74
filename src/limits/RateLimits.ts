import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type { NetworkLimits } from "../config/NodeConfig.ts"
import { TokenBucket } from "./TokenBucket.ts"
import { QuotaLeases } from "../internal/QuotaLeases.ts"
import { supervise } from "../internal/supervise.ts"

interface KeyState {
  readonly bucket: TokenBucket
  epoch: number
  used: number
  /** Units of this epoch's quota leased from the cluster (unused alone). */
  leased: number
  readonly epochMillis: number
}

/** `wait` (from `unsafeTake` only, in a cluster): this node's lease is used up; `take` asks for more. */
export type Verdict = "ok" | "rate" | "quota" | "wait"

/**
 * Units leased at a time: a twentieth of the quota. A key sending through several nodes at once may
 * be refused up to that many messages early per further node; it never gets more than its quota.
 */
export const leaseSize = (quota: number): number => Math.max(1, Math.floor(quota / 20))

/**
 * Per-key message limits (a token bucket and a quota per epoch), shared by all sessions of a key. In a
 * cluster the quota is leased from a counter every node shares (`QuotaLeases`), so it is exact across
 * nodes; the token bucket stays per node (at most the number of nodes times the rate).
 */
export class RateLimits extends Context.Tag("im/RateLimits")<RateLimits, {
  /** Never `wait`: it leases what it needs first (a refused lease is `quota`; an unreachable counter too). */
  readonly take: (l2psUid: string, key: string, limits: NetworkLimits) => Effect.Effect<Verdict>
  /** `take` from plain code at `now`; a refusal changes nothing, so it can be asked again. */
  readonly unsafeTake: (l2psUid: string, key: string, limits: NetworkLimits, now: number) => Verdict
  readonly size: Effect.Effect<number>
}>() {}

const PRUNE_EVERY = "30 seconds"

export const layer: Layer.Layer<RateLimits> = Layer.scoped(
  RateLimits,
  Effect.gen(function*() {
    const states = new Map<string, KeyState>()
    const leases = Option.getOrUndefined(yield* Effect.serviceOption(QuotaLeases))
    const prune = Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, s] of states) {
        if (Math.floor(now / s.epochMillis) !== s.epoch && s.bucket.isFull(now)) states.delete(id)
      }
    })
    const unsafeTake = (l2psUid: string, key: string, limits: NetworkLimits, now: number): Verdict => {
      const id = `${l2psUid}\u0000${key}`
      const epochMillis = limits.epochSeconds * 1000
      const epoch = Math.floor(now / epochMillis)
      let s = states.get(id)
      if (s === undefined) {
        s = { bucket: new TokenBucket(limits.rateLimitBurst, limits.rateLimitPerSec, now), epoch, used: 0, leased: 0, epochMillis }
        states.set(id, s)
      }
      if (s.epoch !== epoch) {
        s.epoch = epoch
        s.used = 0
        s.leased = 0
      }
      if (s.used >= limits.epochQuota) return "quota"
      if (leases !== undefined && s.used >= s.leased) return "wait"
      if (!s.bucket.tryTake(now)) return "rate"
      s.used++
      return "ok"
    }
    yield* supervise("rate-limits/prune", Effect.repeat(prune, Schedule.spaced(PRUNE_EVERY)))
    return {
      size: Effect.sync(() => states.size),
      take: (l2psUid, key, limits) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const first = unsafeTake(l2psUid, key, limits, now)
          if (first !== "wait" || leases === undefined) return Effect.succeed(first)
          const s = states.get(`${l2psUid}\u0000${key}`)!
          const epoch = s.epoch
          return leases.lease(l2psUid, key, epoch, leaseSize(limits.epochQuota), limits.epochQuota).pipe(
            Effect.catchAll((cause) => Effect.as(Effect.logWarning("quota counter unavailable", cause), 0)),
            Effect.map((granted): Verdict => {
              if (s.epoch === epoch) s.leased += granted
              // Nothing left in the cluster: the quota is spent, here as on every node.
              if (granted === 0) return "quota"
              const again = unsafeTake(l2psUid, key, limits, now)
              return again === "wait" ? "quota" : again
            })
          )
        }),
      unsafeTake
    }
  })
)
