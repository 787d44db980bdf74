import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../node/NodeConfig.ts"
import { TokenBucket } from "./TokenBucket.ts"

/** Per remote address: a cap on open connections and a registration bucket, so one host cannot flood. */
export class AddressLimits extends Context.Tag("im/AddressLimits")<AddressLimits, {
  /** Counts a new connection; false when the address is at its cap (the connection is refused). */
  readonly connect: (address: string) => boolean
  readonly disconnect: (address: string) => void
  /** Takes a registration attempt from the address's bucket. */
  readonly register: (address: string) => Effect.Effect<boolean>
  readonly size: Effect.Effect<{ readonly addresses: number; readonly buckets: number }>
}>() {}

export const layer: Layer.Layer<AddressLimits, never, NodeConfig> = Layer.scoped(
  AddressLimits,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const open = new Map<string, number>()
    const buckets = new Map<string, TokenBucket>()
    yield* Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [address, bucket] of buckets) if (bucket.isFull(now)) buckets.delete(address)
    }).pipe(Effect.repeat(Schedule.spaced("30 seconds")), Effect.forkScoped)
    return {
      connect: (address) => {
        const n = open.get(address) ?? 0
        if (n >= cfg.maxConnectionsPerAddress) return false
        open.set(address, n + 1)
        return true
      },
      disconnect: (address) => {
        const n = (open.get(address) ?? 1) - 1
        if (n <= 0) open.delete(address)
        else open.set(address, n)
      },
      register: (address) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          let bucket = buckets.get(address)
          if (bucket === undefined) {
            bucket = new TokenBucket(cfg.registrationBurstPerAddress, cfg.registrationRatePerAddress, now)
            buckets.set(address, bucket)
          }
          return bucket.tryTake(now)
        }),
      size: Effect.sync(() => ({ addresses: open.size, buckets: buckets.size }))
    }
  })
)
