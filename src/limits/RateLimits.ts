import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type { NetworkLimits } from "../config/NodeConfig.ts"
import { TokenBucket } from "./TokenBucket.ts"
import { supervise } from "../internal/supervise.ts"

interface KeyState {
  readonly bucket: TokenBucket
  epoch: number
  used: number
  readonly epochMillis: number
}

export type Verdict = "ok" | "rate" | "quota"

/** Per-key message limits (a token bucket and a quota per epoch), shared by all sessions of a key. */
export class RateLimits extends Context.Tag("im/RateLimits")<RateLimits, {
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
        s = { bucket: new TokenBucket(limits.rateLimitBurst, limits.rateLimitPerSec, now), epoch, used: 0, epochMillis }
        states.set(id, s)
      }
      if (s.epoch !== epoch) {
        s.epoch = epoch
        s.used = 0
      }
      if (s.used >= limits.epochQuota) return "quota"
      if (!s.bucket.tryTake(now)) return "rate"
      s.used++
      return "ok"
    }
    yield* supervise("rate-limits/prune", Effect.repeat(prune, Schedule.spaced(PRUNE_EVERY)))
    return {
      size: Effect.sync(() => states.size),
      take: (l2psUid, key, limits) => Effect.map(Clock.currentTimeMillis, (now) => unsafeTake(l2psUid, key, limits, now)),
      unsafeTake
    }
  })
)
