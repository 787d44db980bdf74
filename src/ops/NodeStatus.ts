import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import pkg from "../../package.json" with { type: "json" }
import { NodeKey } from "../crypto/NodeKey.ts"
import { type NetworkStats, PipelineStore } from "../l2ps/PipelineStore.ts"
import { Peers } from "../relay/Peers.ts"
import { Storage, type StorageError } from "../storage/Storage.ts"

export const VERSION: string = pkg.version

/**
 * What a host (and the admin server) may read about a running node: its identity and health. The
 * node's internal services stay inside `NodeCore`; this is the one window onto them.
 */
export class NodeStatus extends Context.Tag("im/NodeStatus")<NodeStatus, {
  readonly version: string
  /** The first 64 hex digits of the node's ML-DSA-65 public key: enough to tell nodes apart. */
  readonly nodeKey: string
  /** When the node's layer was built (Clock millis). */
  readonly startedAt: number
  readonly sessions: Effect.Effect<number>
  /** Fails when the database does not answer. */
  readonly storage: Effect.Effect<void, StorageError>
  /** Per network: queued, unbatched and unconfirmed messages and the ages of the oldest. */
  readonly networks: Effect.Effect<ReadonlyArray<NetworkStats>, StorageError>
}>() {}

export const layer = Layer.effect(
  NodeStatus,
  Effect.gen(function*() {
    const storage = yield* Storage
    const pipeline = yield* PipelineStore
    const peers = yield* Peers
    const key = yield* NodeKey
    return {
      version: VERSION,
      nodeKey: key.publicKeyHex.slice(0, 64),
      startedAt: yield* Clock.currentTimeMillis,
      sessions: peers.count,
      storage: storage.ping,
      networks: pipeline.stats
    }
  })
)
