import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { addressGroup } from "../domain/IpAddress.ts"
import { supervise } from "../internal/supervise.ts"
import { TokenBucket } from "../limits/TokenBucket.ts"

/** What a read costs: one for asking, one per row, one per 4 KiB answered. */
export const readCost = (rows: number, chars: number): number => 1 + rows + Math.floor(chars / 4096)

/** Who reads: the key (in its network) and the remote address it reads from (an IPv6 one counts as its /64). */
export interface Reader {
  readonly l2psUid: string
  readonly key: string
  readonly address: string
}

/**
 * Reads (history, proof_request, discover) budgeted by their cost, per key and per address, on top of the
 * connection's frame budget: many sockets of one key, or many keys of one host, share one budget.
 */
export class ReadBudget extends Context.Tag("im/ReadBudget")<ReadBudget, {
  /** Whether the reader may read now: its key and its address are both in credit. */
  readonly allow: (reader: Reader) => Effect.Effect<boolean>
  /** Charges a read's cost (see `readCost`) to its key and its address. */
  readonly charge: (reader: Reader, cost: number) => Effect.Effect<void>
  readonly size: Effect.Effect<{ readonly keys: number; readonly addresses: number }>
}>() {}

export const layer: Layer.Layer<ReadBudget, never, NodeConfig> = Layer.scoped(
  ReadBudget,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const keys = new Map<string, TokenBucket>()
    const addresses = new Map<string, TokenBucket>()
    const keyOf = (r: Reader) => `${r.l2psUid}\u0000${r.key}`
    const bucket = (map: Map<string, TokenBucket>, id: string, burst: number, rate: number, now: number) => {
      let b = map.get(id)
      if (b === undefined) map.set(id, b = new TokenBucket(burst, rate, now))
      return b
    }
    // Full buckets hold nothing worth keeping: state is bounded by who read lately.
    yield* supervise("read-budget/prune", Effect.repeat(Effect.map(Clock.currentTimeMillis, (now) => {
      for (const map of [keys, addresses]) for (const [id, b] of map) if (b.isFull(now)) map.delete(id)
    }), Schedule.spaced("30 seconds")))
    return {
      allow: (r) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          (keys.get(keyOf(r))?.inCredit(now) ?? true) && (addresses.get(addressGroup(r.address))?.inCredit(now) ?? true)),
      charge: (r, cost) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          bucket(keys, keyOf(r), cfg.readBurstPerKey, cfg.readRatePerKey, now).charge(now, cost)
          bucket(addresses, addressGroup(r.address), cfg.readBurstPerAddress, cfg.readRatePerAddress, now).charge(now, cost)
        }),
      size: Effect.sync(() => ({ keys: keys.size, addresses: addresses.size }))
    }
  })
)
