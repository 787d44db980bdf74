import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { supervise } from "../internal/supervise.ts"
import { TokenBucket } from "./TokenBucket.ts"

export type PrekeyRequest = "fetch" | "publish"

/**
 * Prekey requests per key (in its network, all its sessions together): `bundle_fetch`es, each of which
 * takes a one-time key from every device of its target, so that no key drains another's pools faster
 * than the pools are refilled; and `prekeys_publish`es, each of which checks up to 152 signatures.
 */
export class PrekeyLimits extends Context.Tag("im/PrekeyLimits")<PrekeyLimits, {
  /** Takes one request of `kind` from the key's bucket; false (nothing taken) past it. */
  readonly take: (kind: PrekeyRequest, l2psUid: string, key: string) => Effect.Effect<boolean>
  readonly size: Effect.Effect<number>
}>() {}

export const layer: Layer.Layer<PrekeyLimits, never, NodeConfig> = Layer.scoped(
  PrekeyLimits,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const buckets = new Map<string, TokenBucket>()
    const shape = (kind: PrekeyRequest) =>
      kind === "fetch"
        ? [cfg.bundleFetchBurst, cfg.bundleFetchPerMinute / 60] as const
        : [cfg.prekeyPublishBurst, cfg.prekeyPublishPerMinute / 60] as const
    // Full buckets hold nothing worth keeping: state is bounded by who asked lately.
    yield* supervise("prekey-limits/prune", Effect.repeat(Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, b] of buckets) if (b.isFull(now)) buckets.delete(id)
    }), Schedule.spaced("30 seconds")))
    return {
      size: Effect.sync(() => buckets.size),
      take: (kind, l2psUid, key) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const id = `${kind}\u0000${l2psUid}\u0000${key}`
          let b = buckets.get(id)
          if (b === undefined) {
            const [burst, perSecond] = shape(kind)
            buckets.set(id, b = new TokenBucket(burst, perSecond, now))
          }
          return b.tryTake(now)
        })
    }
  })
)
