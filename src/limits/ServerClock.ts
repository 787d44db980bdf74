import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MAX_AHEAD_MILLIS, SAME_MILLI_MAX } from "../domain/Timestamps.ts"

export { MAX_AHEAD_MILLIS }

/** Messages a second one conversation carries before its timestamps would run past `MAX_AHEAD_MILLIS`. */
export const CONVERSATION_MAX_PER_SECOND = SAME_MILLI_MAX * 1000

/** Cells of "last timestamp"; conversations share a cell only by (secret) hash collision. */
const SLOTS = 65_536

/**
 * Message timestamps: never decreasing per conversation (network and unordered pair of keys), at most
 * `SAME_MILLI_MAX` of them equal, so that history pages, which never end inside a group of equal
 * timestamps, never skip or repeat when paged by `before`. A node-wide counter would have to run ahead of
 * real time under honest load (~30,000 messages/s) and could be pushed ahead for good by one peer; per
 * conversation a slot runs ahead only past `CONVERSATION_MAX_PER_SECOND` in it, and then the message is
 * refused rather than the clock moved more than `MAX_AHEAD_MILLIS` ahead.
 */
export class ServerClock extends Context.Tag("im/ServerClock")<ServerClock, {
  /** The next timestamp of the conversation of `a` and `b` at `now`; undefined when it would run too far ahead. */
  readonly unsafeNext: (network: string, a: string, b: string, now: number) => number | undefined
  /**
   * `unsafeNext` on the node's clock, at most `sameMilli` equal timestamps in a row (1 for the legacy server,
   * whose message hash covers the timestamp: equal ones could make two messages one).
   */
  readonly next: (network: string, a: string, b: string, sameMilli?: number) => Effect.Effect<number | undefined>
}>() {}

/**
 * The slot of a conversation: a 32-bit multiplicative hash of its three names, seeded with a secret of
 * the process so that a peer cannot choose keys whose conversations land on another's slot. Plain code,
 * no allocation: it runs for every message.
 */
const lane = (h: number, s: string, mul: number): number => {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), mul)
  return Math.imul(h ^ 0x3a, mul)
}
const slotOf = (seed: Uint32Array, network: string, a: string, b: string): number => {
  const lo = a < b ? a : b
  const hi = a < b ? b : a
  const h1 = lane(lane(lane(seed[0]!, network, 2654435761) ^ seed[2]!, lo, 2654435761), hi, 2654435761)
  const h2 = lane(lane(lane(seed[1]!, network, 1597334677) ^ seed[3]!, lo, 1597334677), hi, 1597334677)
  const h = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  return (h ^ (h >>> 16)) & (SLOTS - 1)
}

export const make = (): typeof ServerClock.Service => {
  const last = new Float64Array(SLOTS)
  // How many timestamps the slot has handed out at `last`.
  const used = new Uint8Array(SLOTS)
  // Not key material, but it must stay unknown to peers: the platform CSPRNG, once per process.
  const seed = crypto.getRandomValues(new Uint32Array(4))
  const unsafeNext = (network: string, a: string, b: string, now: number, sameMilli = SAME_MILLI_MAX): number | undefined => {
    const i = slotOf(seed, network, a, b)
    const prev = last[i]!
    if (now > prev) {
      last[i] = now
      used[i] = 1
      return now
    }
    if (used[i]! < sameMilli) {
      used[i]!++
      return prev
    }
    const ts = prev + 1
    if (ts - now > MAX_AHEAD_MILLIS) return undefined
    last[i] = ts
    used[i] = 1
    return ts
  }
  return {
    unsafeNext: (network, a, b, now) => unsafeNext(network, a, b, now),
    next: (network, a, b, sameMilli) => Effect.map(Clock.currentTimeMillis, (now) => unsafeNext(network, a, b, now, sameMilli))
  }
}

export const layer: Layer.Layer<ServerClock> = Layer.sync(ServerClock, make)
