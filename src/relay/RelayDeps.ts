import * as Effect from "effect/Effect"
import { NodeKey } from "../crypto/NodeKey.ts"
import { PipelineStore, type PipelineStoreShape } from "../l2ps/PipelineStore.ts"
import { NodeConfig, type NodeConfigShape } from "../config/NodeConfig.ts"
import { PrekeyStore, type PrekeyStoreShape } from "../storage/PrekeyStore.ts"
import { InviteStore, type InviteStoreShape } from "../storage/InviteStore.ts"
import { Storage, type StorageShape } from "../storage/Storage.ts"
import { ValidatorPool, type ValidatorPoolShape } from "../validators/ValidatorPool.ts"
import { AddressLimits } from "../limits/AddressLimits.ts"
import { Bans } from "../limits/Bans.ts"
import { nodeIdOf } from "./BoundProof.ts"
import { ClusterRouter } from "./ClusterRouter.ts"
import { Committer } from "./Committer.ts"
import { PendingProbe } from "./PendingProbe.ts"
import { PrekeyLimits } from "../limits/PrekeyLimits.ts"
import { Presence } from "./Presence.ts"
import { RateLimits } from "../limits/RateLimits.ts"
import { ReadBudget } from "./ReadBudget.ts"
import { ReplayGuard } from "./ReplayGuard.ts"
import { ServerClock } from "../limits/ServerClock.ts"
import { Peers } from "./Peers.ts"
import { Roster } from "./Roster.ts"

/** The services frame handlers use, captured once so handlers need no context. */
export interface RelayDeps {
  readonly cfg: NodeConfigShape
  readonly storage: StorageShape
  readonly validators: ValidatorPoolShape
  readonly committer: typeof Committer.Service
  readonly rateLimits: typeof RateLimits.Service
  readonly replay: typeof ReplayGuard.Service
  readonly clock: typeof ServerClock.Service
  readonly peers: typeof Peers.Service
  /** Registration, unregistration and who is online: `peers` alone, every node's in a cluster. */
  readonly roster: typeof Roster.Service
  readonly pipeline: PipelineStoreShape
  readonly addressLimits: typeof AddressLimits.Service
  readonly bans: typeof Bans.Service
  readonly pendingProbe: typeof PendingProbe.Service
  /** The node's ML-DSA-65 public key (hex) and its SHA-256, the node's name in bound proofs. */
  readonly nodeKey: string
  readonly nodeId: string
  readonly presence: typeof Presence.Service
  readonly readBudget: typeof ReadBudget.Service
  readonly prekeys: PrekeyStoreShape
  readonly prekeyLimits: typeof PrekeyLimits.Service
  readonly invites: InviteStoreShape
  /** Delivery to and from the other nodes of a cluster (no-ops on one node). */
  readonly router: typeof ClusterRouter.Service
  /** The current time for plain code (the connection's callbacks), from the same `Clock` as effects. */
  readonly now: () => number
}

export const make = Effect.flatMap(NodeKey, (key) => Effect.all({
  nodeKey: Effect.succeed(key.publicKeyHex),
  nodeId: Effect.succeed(nodeIdOf(key.publicKeyHex)),
  cfg: NodeConfig,
  storage: Storage,
  validators: ValidatorPool,
  committer: Committer,
  rateLimits: RateLimits,
  replay: ReplayGuard,
  clock: ServerClock,
  peers: Peers,
  roster: Roster,
  pipeline: PipelineStore,
  addressLimits: AddressLimits,
  bans: Bans,
  pendingProbe: PendingProbe,
  presence: Presence,
  readBudget: ReadBudget,
  prekeys: PrekeyStore,
  prekeyLimits: PrekeyLimits,
  invites: InviteStore,
  router: ClusterRouter,
  now: Effect.map(Effect.clock, (clock) => () => clock.unsafeCurrentTimeMillis())
}))
