import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { encodeFrame } from "../domain/Frames.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import { Peers } from "./Peers.ts"
import { TokenBucket } from "../limits/TokenBucket.ts"
import { supervise } from "../internal/supervise.ts"

interface KeyPresence {
  readonly l2psUid: string
  readonly key: string
  /** What the network was last told about the key. */
  announced: boolean
  /** Its state as last reported (this node's sessions alone, or the cluster's). */
  online: boolean
  /** A change is waiting for the bucket; the sweep announces the key's state then, if it still differs. */
  pending: boolean
  readonly bucket: TokenBucket
}

/**
 * `peer_joined` / `peer_left` of a network, rate-limited per key: every announcement is a frame to every
 * session of the network, so a key that comes and goes many times a second would otherwise cost the
 * whole network as much. Past its bucket a key's changes are coalesced: the sweep announces its state of
 * the moment when the bucket allows, and nothing when it is back where it was announced. The latest
 * state is thus always announced, at most `presenceBurst` then `presencePerMinute` changes per key.
 */
export class Presence extends Context.Tag("im/Presence")<Presence, {
  /** The key's first session registered (`online`), or its last one left. */
  readonly changed: (l2psUid: string, key: string, online: boolean) => Effect.Effect<void>
  /** Keys with state (recent changes). */
  readonly size: Effect.Effect<number>
}>() {}

const idOf = (l2psUid: string, key: string) => `${l2psUid}\u0000${key}`

export const layer: Layer.Layer<Presence, never, NodeConfig | Peers> = Layer.scoped(
  Presence,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const peers = yield* Peers
    const perSecond = cfg.presencePerMinute / 60
    const states = new Map<string, KeyPresence>()
    const pending = new Set<KeyPresence>()

    const announce = (s: KeyPresence, online: boolean, now: number) => {
      s.announced = online
      const text = encodeFrame(online ? "peer_joined" : "peer_left", { publicKey: s.key }, now)
      return peers.broadcast(s.l2psUid, s.key, text)
    }

    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const s of pending) {
        const online = s.online
        if (online !== s.announced) {
          if (!s.bucket.tryTake(now)) continue
          yield* announce(s, online, now)
        }
        s.pending = false
        pending.delete(s)
      }
      // Settled keys hold nothing worth keeping: their next change starts afresh from the same state.
      for (const [id, s] of states) if (!s.pending && s.bucket.isFull(now)) states.delete(id)
    })
    const every = cfg.presenceSweepMillis ?? Math.max(100, Math.min(1000, Math.floor(1000 / perSecond)))
    yield* supervise("presence/sweep", Effect.repeat(sweep, Schedule.spaced(every)))

    return {
      size: Effect.sync(() => states.size),
      changed: (l2psUid, key, online) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const id = idOf(l2psUid, key)
          let s = states.get(id)
          if (s === undefined) {
            // A key without state was announced in the state it is leaving (see the sweep's pruning).
            s = { l2psUid, key, announced: !online, online, pending: false, bucket: new TokenBucket(cfg.presenceBurst, perSecond, now) }
            states.set(id, s)
          }
          s.online = online
          if (s.pending || s.announced === online) return Effect.void
          if (s.bucket.tryTake(now)) return announce(s, online, now)
          s.pending = true
          pending.add(s)
          return Effect.void
        })
    }
  })
)
