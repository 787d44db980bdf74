import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { addressGroup } from "../domain/IpAddress.ts"
import { type Connection, type ConnectionEvents, ignoredEvents, PassedOn } from "../transport/Transport.ts"
import { TokenBucket } from "./TokenBucket.ts"
import { supervise } from "../internal/supervise.ts"

/**
 * Per remote address: a cap on open connections and a registration bucket, so one host cannot flood.
 * An IPv6 address counts as its /64 and an IPv4-mapped one as its IPv4 (`addressGroup`).
 */
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
    yield* supervise("address-limits/prune", Effect.repeat(Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [address, bucket] of buckets) if (bucket.isFull(now)) buckets.delete(address)
    }), Schedule.spaced("30 seconds")))
    return {
      connect: (remote) => {
        const address = addressGroup(remote)
        const n = open.get(address) ?? 0
        if (n >= cfg.maxConnectionsPerAddress) return false
        open.set(address, n + 1)
        return true
      },
      disconnect: (remote) => {
        const address = addressGroup(remote)
        const n = (open.get(address) ?? 1) - 1
        if (n <= 0) open.delete(address)
        else open.set(address, n)
      },
      register: (remote) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const address = addressGroup(remote)
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

const POLICY_VIOLATION = 1008

/**
 * Opens a connection through `open` unless its address is at its cap (then it is closed with 1008);
 * it counts against the address until it closes. Both servers share one count per address.
 */
export const guard = (
  limits: typeof AddressLimits.Service,
  conn: Connection,
  open: () => ConnectionEvents
): ConnectionEvents => {
  if (!limits.connect(conn.remoteAddress)) {
    conn.close(POLICY_VIOLATION, "Too many connections from this address")
    return ignoredEvents
  }
  return new Counted(limits, conn.remoteAddress, open())
}

/** A socket counted against its address until it closes. */
class Counted extends PassedOn {
  constructor(
    private readonly limits: typeof AddressLimits.Service,
    private readonly address: string,
    events: ConnectionEvents
  ) {
    super(events)
  }

  override closed(code: number, reason: string): void {
    this.limits.disconnect(this.address)
    super.closed(code, reason)
  }
}
