import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Peer, Peers } from "./Peers.ts"

/**
 * Who is online in a network as registration, unregistration, `discover` and the register answer
 * see it. Alone (`local`) it is this node's `Peers`, the same functions with nothing in between. A
 * cluster member (`cluster`, see `ClusterRoster`) keeps `Peers` for its own sessions and decides a
 * key's first and last session, and the session cap, across every node: its `add` and `remove`
 * then never say `first` / `last` (the announcement follows once the cluster has decided).
 */
export class Roster extends Context.Tag("im/Roster")<Roster, {
  readonly kind: "local" | "cluster"
  /** Registers a session; `first` and `evicted` as `Peers.add` (alone) or nothing (a cluster member). */
  readonly add: (peer: Peer, maxPerKey: number) => Effect.Effect<{ first: boolean; evicted: ReadonlyArray<Peer> }>
  readonly remove: (peer: Peer) => Effect.Effect<{ last: boolean; removed: boolean }>
  /** The network's online keys, as `Peers.keysPage`, of every node. */
  readonly keysPage: (l2psUid: string, offset: number, max: number) => Effect.Effect<{ readonly keys: ReadonlyArray<string>; readonly total: number }>
  /** Whether a key has a session on any node. */
  readonly isOnline: (l2psUid: string, key: string) => Effect.Effect<boolean>
}>() {}

export const layerLocal: Layer.Layer<Roster, never, Peers> = Layer.effect(
  Roster,
  Effect.map(Peers, (peers) =>
    Roster.of({
      kind: "local",
      add: peers.add,
      remove: peers.remove,
      keysPage: peers.keysPage,
      isOnline: (l2psUid, key) => Effect.sync(() => peers.unsafeOnline(l2psUid, key).length > 0)
    }))
)
