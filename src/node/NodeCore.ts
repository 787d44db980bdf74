import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LegacyServer from "../legacy/LegacyServer.ts"
import * as BatchWakeups from "../l2ps/BatchWakeups.ts"
import * as Networks from "../l2ps/Networks.ts"
import * as AddressLimits from "../limits/AddressLimits.ts"
import * as Bans from "../limits/Bans.ts"
import * as NodeStatus from "../ops/NodeStatus.ts"
import * as MessageRetention from "../ops/MessageRetention.ts"
import * as InvitePrune from "../ops/InvitePrune.ts"
import * as OfflineExpiry from "../ops/OfflineExpiry.ts"
import * as ClusterRouter from "../relay/ClusterRouter.ts"
import * as Committer from "../relay/Committer.ts"
import * as PendingProbe from "../relay/PendingProbe.ts"
import * as PrekeyLimits from "../limits/PrekeyLimits.ts"
import * as Presence from "../relay/Presence.ts"
import * as ClusterRoster from "../relay/ClusterRoster.ts"
import * as RateLimits from "../limits/RateLimits.ts"
import * as ReadBudget from "../relay/ReadBudget.ts"
import * as Relay from "../relay/Relay.ts"
import * as ReplayGuard from "../relay/ReplayGuard.ts"
import * as ServerClock from "../limits/ServerClock.ts"
import * as Peers from "../relay/Peers.ts"
import * as L2psServer from "../relay/L2psServer.ts"

const Internals = Layer.mergeAll(
  AddressLimits.layer,
  Bans.layer,
  Committer.layer,
  PendingProbe.layer,
  RateLimits.layer,
  ReplayGuard.layer,
  ServerClock.layer,
  Presence.layer,
  ReadBudget.layer,
  PrekeyLimits.layer,
  ClusterRouter.layer
).pipe(
  // The roster needs presence (it announces the cluster's first and last sessions through it).
  (internals) => ClusterRoster.layer.pipe(Layer.provideMerge(internals)),
  Layer.provideMerge(Peers.layer),
  Layer.provideMerge(BatchWakeups.layer)
)

// NodeStatus reads the legacy server's registry, which `LegacyServer.layer` outputs.
const Features = NodeStatus.layer.pipe(Layer.provideMerge(Layer.mergeAll(
  L2psServer.layer,
  Networks.layer,
  OfflineExpiry.layer,
  InvitePrune.layer,
  MessageRetention.layer,
  LegacyServer.layer
)))

/**
 * The node with every internal service in its output (Peers, Committer, RateLimits, ReplayGuard,
 * …), for tests that drive or inspect them. A host uses `NodeCore`.
 */
export const NodeCoreInternal = Features.pipe(
  Layer.provideMerge(Relay.layer),
  Layer.provideMerge(Internals)
)

/** What a host gets from the node: the two servers, listening while the layer lives, and its status. */
export type Public = L2psServer.L2psServer | LegacyServer.LegacyServer | NodeStatus.NodeStatus

// `LegacyServer.layer` also outputs the legacy relay's own services; only the public ones are kept.
const onlyPublic = Layer.effectContext(
  Effect.map(
    Effect.context<Public>(),
    Context.pick(L2psServer.L2psServer, LegacyServer.LegacyServer, NodeStatus.NodeStatus)
  )
)

/**
 * The node over its ports only (NodeConfig, Crypto, NodeKey, Storage, LegacyStorage, PipelineStore, BanStore, PrekeyStore, InviteStore,
 * ValidatorPool, L1, Transport): what a host embeds with its own adapters. Its output is `Public` and
 * nothing else, so a host cannot come to depend on the node's internals.
 */
export const NodeCore: Layer.Layer<
  Public,
  Layer.Layer.Error<typeof NodeCoreInternal>,
  Layer.Layer.Context<typeof NodeCoreInternal>
> = onlyPublic.pipe(Layer.provide(Features), Layer.provide(Relay.layer), Layer.provide(Internals))
