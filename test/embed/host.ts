import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import {
  BunTransport,
  Crypto,
  L1,
  NodeConfig,
  NodeCore,
  NodeKey,
  SqlStores,
  ValidatorPool
} from "demos-im-node"

/** The host node's own chain, as its code already offers it. */
export interface HostChain {
  submit(tx: L1.L1Transaction): Promise<void>
  inclusion(txHash: string): Promise<L1.Inclusion | undefined>
  head(): Promise<L1.Head | undefined>
}

const onChain = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new L1.L1Error({ message: `host chain: ${what} failed`, cause }) })

/** Batches are anchored on the host's chain instead of the embedded one. */
const hostL1 = (chain: HostChain) =>
  Layer.succeed(L1.L1, {
    name: "host",
    submit: (tx) => onChain("submit", () => chain.submit(tx)),
    inclusion: (txHash) => onChain("inclusion", () => chain.inclusion(txHash)).pipe(Effect.map(Option.fromNullable)),
    head: onChain("head", () => chain.head()).pipe(Effect.map(Option.fromNullable))
  })

export interface MessagingOptions {
  /** The host's database: its own `PgClient.layer(…)` or a `PgliteClient.layer(…)`. */
  readonly sql: Layer.Layer<SqlClient.SqlClient, unknown>
  readonly chain: HostChain
  /** 32 bytes the host keeps; the node signs its batches with the ML-DSA-65 key derived from it. */
  readonly nodeSeed: Uint8Array
  readonly l2psPort: number
  readonly legacyPort: number
}

/** The messaging node as one layer of a larger node: its servers listen while the layer lives. */
export const messagingLayer = (options: MessagingOptions) => {
  const config = NodeConfig.layer({
    l2psPort: options.l2psPort,
    legacyPort: options.legacyPort,
    networks: ["chat"],
    limits: { rateLimitPerSec: 50, rateLimitBurst: 100 }
  })
  const adapters = Layer.mergeAll(
    SqlStores.layer.pipe(Layer.provide(options.sql)),
    hostL1(options.chain),
    ValidatorPool.layerInline,
    BunTransport.layer,
    NodeKey.layerFromSeed(options.nodeSeed)
  ).pipe(Layer.provideMerge(Crypto.layer))
  return NodeCore.pipe(Layer.provideMerge(adapters), Layer.provideMerge(config))
}
