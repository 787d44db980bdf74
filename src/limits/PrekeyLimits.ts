import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { addressGroup } from "../domain/IpAddress.ts"
import { supervise } from "../internal/supervise.ts"
import { TokenBucket } from "./TokenBucket.ts"

export type PrekeyRequest = "fetch" | "publish"

/** Who asks: the key (in its network) and the remote address it asks from (an IPv6 one counts as its /64). */
export interface Requester {
  readonly l2psUid: string
  readonly key: string
  readonly address: string
}

/** Past which bucket a request was refused. */
export type PrekeyVerdict = "ok" | "key" | "address"

/**
 * Prekey requests, on top of the connection's frame budget. `bundle_fetch`es take a one-time key from
 * every device of their target: they are limited per requesting key (all its sessions) and per remote
 * address (all its keys, since keys cost nothing to make), so that no one drains another's pools faster
 * than they are refilled. `prekeys_publish`es check up to 152 signatures each: limited per key.
 */
export class PrekeyLimits extends Context.Tag("im/PrekeyLimits")<PrekeyLimits, {
  /** Takes one request of `kind`; past a bucket nothing is taken and the verdict names it. */
  readonly take: (kind: PrekeyRequest, requester: Requester) => Effect.Effect<PrekeyVerdict>
  readonly size: Effect.Effect<number>
}>() {}

export const layer: Layer.Layer<PrekeyLimits, never, NodeConfig> = Layer.scoped(
  PrekeyLimits,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const buckets = new Map<string, TokenBucket>()
    const bucket = (id: string, burst: number, perMinute: number, now: number) => {
      let b = buckets.get(id)
      if (b === undefined) buckets.set(id, b = new TokenBucket(burst, perMinute / 60, now))
      return b
    }
    // Full buckets hold nothing worth keeping: state is bounded by who asked lately.
    yield* supervise("prekey-limits/prune", Effect.repeat(Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, b] of buckets) if (b.isFull(now)) buckets.delete(id)
    }), Schedule.spaced("30 seconds")))
    return {
      size: Effect.sync(() => buckets.size),
      take: (kind, r) =>
        Effect.map(Clock.currentTimeMillis, (now): PrekeyVerdict => {
          const ofKey = `${kind}\u0000${r.l2psUid}\u0000${r.key}`
          if (kind === "publish") return bucket(ofKey, cfg.prekeyPublishBurst, cfg.prekeyPublishPerMinute, now).tryTake(now) ? "ok" : "key"
          const byKey = bucket(ofKey, cfg.bundleFetchBurst, cfg.bundleFetchPerMinute, now)
          if (!byKey.tryTake(now)) return "key"
          const byAddress = bucket(`fetch\u0000${addressGroup(r.address)}`, cfg.bundleFetchBurstPerAddress, cfg.bundleFetchPerMinutePerAddress, now)
          if (byAddress.tryTake(now)) return "ok"
          byKey.charge(now, -1) // refused: the key's token is given back
          return "address"
        })
    }
  })
)
