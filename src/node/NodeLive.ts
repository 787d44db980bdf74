import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as NodeIdentity from "../config/NodeIdentity.ts"
import * as Ownership from "../internal/Ownership.ts"
import * as PgOwnership from "../storage/PgOwnership.ts"
import * as PgSeenProofs from "../storage/PgSeenProofs.ts"
import * as NatsBroker from "../transport/NatsBroker.ts"
import * as Crypto from "../crypto/Crypto.ts"
import * as NodeKey from "../crypto/NodeKey.ts"
import { LegacyServer } from "../legacy/LegacyServer.ts"
import * as LocalL1 from "../l1/LocalL1.ts"
import * as AdminServer from "../ops/AdminServer.ts"
import * as Database from "../storage/Database.ts"
import { makePrivate } from "../storage/PrivateDir.ts"
import { Broker } from "../transport/Broker.ts"
import * as BunTransport from "../transport/BunTransport.ts"
import * as ValidatorPool from "../validators/ValidatorPool.ts"
import { L2psServer } from "../relay/L2psServer.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as NodeConfigLive from "../config/NodeConfig.ts"
import { NodeCore } from "./NodeCore.ts"
import * as SqlStores from "./SqlStores.ts"

/** On Postgres, nodes may share the database: owned jobs take advisory locks. PGlite is one node's. */
const OwnershipLive = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) => Option.isSome(cfg.databaseUrl) ? PgOwnership.layer : Ownership.layerSingle)
)

/** A cluster member records the proofs it accepts where the other members see them; alone, memory is enough. */
const SeenProofsLive = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) => Option.isSome(cfg.natsUrl) ? PgSeenProofs.layer : Layer.empty)
)

/** The local L1 keeps its chain in the node's database, so it is built after the migrations. */
const Sql = LocalL1.layer.pipe(
  Layer.provideMerge(Layer.merge(OwnershipLive, SeenProofsLive)),
  Layer.provideMerge(SqlStores.layer),
  Layer.provide(Database.layer)
)

/** DATA_DIR checked (and made private) before the database or the key is opened. */
const PrivateDataDir = Layer.effectDiscard(Effect.flatMap(NodeConfig, (cfg) => makePrivate(cfg.dataDir)))

const Adapters = Layer.mergeAll(
  Sql,
  ValidatorPool.layerWorkers(),
  BunTransport.layer,
  NodeKey.layerFromDataDir,
  NatsBroker.layerFromConfig
).pipe(Layer.provideMerge(NodeIdentity.layer), Layer.provideMerge(Crypto.layer), Layer.provide(PrivateDataDir))

const Announce = Layer.effectDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const l2ps = yield* L2psServer
    const legacy = yield* LegacyServer
    const key = yield* NodeKey.NodeKey
    const identity = yield* NodeIdentity.NodeIdentity
    const broker = yield* Broker
    yield* Effect.logInfo(`Demos IM node listening: l2ps ${l2ps.url}, legacy ${legacy.url}, storage ${Database.describe(cfg)}, bus ${broker.kind}`).pipe(
      Effect.annotateLogs({ version: AdminServer.VERSION, nodeKey: key.publicKeyHex.slice(0, 16), nodeId: identity.id })
    )
  })
)

/** JSON lines at LOG_LEVEL. */
const Logging = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) => Layer.merge(Logger.json, Logger.minimumLogLevel(cfg.logLevel)))
)

/** The node as `bun run node` starts it: configuration from the environment, real adapters. */
export const NodeLive = Layer.mergeAll(Announce, AdminServer.layer).pipe(
  Layer.provideMerge(NodeCore),
  Layer.provideMerge(Adapters),
  Layer.provide(Logging),
  Layer.provideMerge(NodeConfigLive.layerFromEnv)
)
