import * as Layer from "effect/Layer"
import * as LegacyServer from "../legacy/LegacyServer.ts"
import * as BatchWakeups from "../l2ps/BatchWakeups.ts"
import * as Networks from "../l2ps/Networks.ts"
import * as AddressLimits from "../limits/AddressLimits.ts"
import * as OfflineExpiry from "../ops/OfflineExpiry.ts"
import * as Committer from "../relay/Committer.ts"
import * as PendingProbe from "../relay/PendingProbe.ts"
import * as Presence from "../relay/Presence.ts"
import * as RateLimits from "../limits/RateLimits.ts"
import * as ReadBudget from "../relay/ReadBudget.ts"
import * as Relay from "../relay/Relay.ts"
import * as ReplayGuard from "../relay/ReplayGuard.ts"
import * as ServerClock from "../limits/ServerClock.ts"
import * as Sessions from "../relay/Sessions.ts"
import * as L2psServer from "../relay/L2psServer.ts"

const Internals = Layer.mergeAll(
  AddressLimits.layer,
  Committer.layer,
  PendingProbe.layer,
  RateLimits.layer,
  ReplayGuard.layer,
  ServerClock.layer,
  Presence.layer,
  ReadBudget.layer
).pipe(Layer.provideMerge(Sessions.layer), Layer.provideMerge(BatchWakeups.layer))

/**
 * The node over its ports only (NodeConfig, Crypto, NodeKey, Storage, PipelineStore, ValidatorPool,
 * L1, Transport): what a host embeds with its own adapters.
 */
export const NodeCore = Layer.mergeAll(L2psServer.layer, Networks.layer, OfflineExpiry.layer, LegacyServer.layer).pipe(
  Layer.provideMerge(Relay.layer),
  Layer.provideMerge(Internals)
)
