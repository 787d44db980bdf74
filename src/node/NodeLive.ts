import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as NodeIdentity from "../config/NodeIdentity.ts"
import * as Ownership from "../internal/Ownership.ts"
import * as BunPgClient from "../storage/BunPgClient.ts"
import * as PgClusterMembers from "../storage/PgClusterMembers.ts"
import * as PgOwnership from "../storage/PgOwnership.ts"
import * as PgQuotaLeases from "../storage/PgQuotaLeases.ts"
import * as PgSeenProofs from "../storage/PgSeenProofs.ts"
import * as PgRosterStore from "../storage/PgRosterStore.ts"
import * as NatsBroker from "../transport/NatsBroker.ts"
import * as Crypto from "../crypto/Crypto.ts"
import * as NodeKey from "../crypto/NodeKey.ts"
import { LegacyServer } from "../legacy/LegacyServer.ts"
import * as LocalL1 from "../l1/LocalL1.ts"
import * as AdminServer from "../ops/AdminServer.ts"
import { NodeStatus } from "../ops/NodeStatus.ts"
import * as Database from "../storage/Database.ts"
import { makePrivate } from "../storage/PrivateDir.ts"
import { Broker } from "../transport/Broker.ts"
import * as BunTransport from "../transport/BunTransport.ts"
import * as ValidatorPool from "../validators/ValidatorPool.ts"
import { L2psServer } from "../relay/L2psServer.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as NodeConfigLive from "../config/NodeConfig.ts"
import { NodeCore } from "./NodeCore.ts"
import * as SqlStorage from "../storage/SqlStorage.ts"
import * as SqlStores from "./SqlStores.ts"
import { PortInUse } from "./StartupFailure.ts"

/**
 * On Postgres, nodes may share the database: owned jobs take advisory locks, held on a connection of
 * their own so that the relay's pool keeps all of its connections. PGlite is one node's.
 */
const OwnershipLive = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) =>
    Option.match(cfg.databaseUrl, {
      onNone: () => Ownership.layerSingle,
      onSome: (url) =>
        PgOwnership.layer.pipe(
          Layer.provide(BunPgClient.layer({ url, maxConnections: 1, keepalives: Option.getOrUndefined(cfg.pgKeepalives) }))
        )
    }))
)

/**
 * A cluster member records accepted proofs, leases quota and lists its sessions where the other
 * members see them, and lists the members on its status page; alone, memory is enough.
 */
const SeenProofsLive = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) =>
    Option.isSome(cfg.natsUrl)
      ? Layer.mergeAll(PgSeenProofs.layer, PgQuotaLeases.layer, PgClusterMembers.layer, PgRosterStore.layer)
      : Layer.empty)
)

/**
 * A cluster member takes a conversation's timestamps from its row in the shared database, so that they
 * strictly increase whichever node writes; alone, the node's own clock orders them (no row to lock).
 */
const StoresLive = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) => Option.isSome(cfg.natsUrl) ? SqlStores.make({ storage: SqlStorage.layerClustered }) : SqlStores.layer)
)

/** The local L1 keeps its chain in the node's database, so it is built after the migrations. */
const Sql = LocalL1.layer.pipe(
  Layer.provideMerge(Layer.merge(OwnershipLive, SeenProofsLive)),
  Layer.provideMerge(StoresLive),
  Layer.provide(Database.layer)
)

/** DATA_DIR checked (and made private) before the database or the key is opened. */
const PrivateDataDir = Layer.effectDiscard(Effect.flatMap(NodeConfig, (cfg) => makePrivate(cfg.dataDir)))

/** A busy ADMIN_PORT stops the start as a busy WebSocket port does, by the setting's name. */
const Admin = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) =>
    AdminServer.layer.pipe(
      Layer.catchAllCause((cause) =>
        [...Cause.failures(cause), ...Cause.defects(cause)].some(BunTransport.isAddressInUse)
          ? Layer.fail(new PortInUse({ server: "admin", host: cfg.adminHost, port: cfg.adminPort }))
          : Layer.failCause(cause)
      )
    ))
)

/**
 * The ports are tried before the database opens (PGlite takes seconds to start): a taken one is
 * reported at once. The servers' own binds still fail the same way if one is taken in between.
 */
const FreePorts = Layer.effectDiscard(
  Effect.flatMap(NodeConfig, (cfg) =>
    Effect.forEach(
      [["l2ps", cfg.host, cfg.l2psPort], ["legacy", cfg.host, cfg.legacyPort], ["admin", cfg.adminHost, cfg.adminPort]] as const,
      ([server, host, port]) =>
        port === 0 ? Effect.void : Effect.try({
          try: () => Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true),
          catch: (e) => BunTransport.isAddressInUse(e) ? new PortInUse({ server, host, port }) : e
        }).pipe(Effect.catchIf((e) => !(e instanceof PortInUse), (e) => Effect.die(e))),
      { discard: true }
    ))
)

const Adapters = Layer.mergeAll(
  Sql,
  ValidatorPool.layerWorkers(),
  BunTransport.layer,
  NodeKey.layerFromDataDir,
  NatsBroker.layerFromConfig
).pipe(
  Layer.provideMerge(NodeIdentity.layer),
  Layer.provideMerge(Crypto.layer),
  Layer.provide(PrivateDataDir),
  Layer.provide(FreePorts)
)

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

/**
 * What a stop leaves behind, logged first when it begins (the servers still up): the sessions about
 * to be closed and what waits in storage for the next start. The database gets 2 s to answer.
 */
const ShutdownReport = Layer.scopedDiscard(
  Effect.gen(function*() {
    const status = yield* NodeStatus
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const sessions = yield* status.sessions
        const networks = yield* status.networks.pipe(Effect.interruptible, Effect.timeout("2 seconds"), Effect.option)
        const waiting = Option.match(networks, {
          onNone: () => "storage did not answer for the queues",
          onSome: (stats) => {
            const queued = stats.reduce((n, s) => n + s.queued, 0)
            const pending = stats.reduce((n, s) => n + s.pending, 0)
            return `${queued} messages wait in storage for their recipients, ${pending} for a batch`
          }
        })
        yield* Effect.logInfo(`shutdown: closing ${sessions} sessions; ${waiting} (kept for the next start)`)
      })
    )
  })
)

/** JSON lines at LOG_LEVEL. */
const Logging = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) => Layer.merge(Logger.json, Logger.minimumLogLevel(cfg.logLevel)))
)

/**
 * The node as `bun run node` starts it: configuration from the environment, real adapters. The admin
 * port is taken before the node says it listens, so that nothing is announced that then fails.
 */
export const NodeLive = ShutdownReport.pipe(Layer.provide(Announce), Layer.provide(Admin)).pipe(
  Layer.provideMerge(NodeCore),
  Layer.provideMerge(Adapters),
  Layer.provide(Logging),
  Layer.provideMerge(NodeConfigLive.layerFromEnv)
)
