import * as Effect from "effect/Effect"
import { Crypto, type CryptoShape } from "../crypto/Crypto.ts"
import { BatchWakeups } from "../l2ps/BatchWakeups.ts"
import { NodeConfig, type NodeConfigShape } from "../config/NodeConfig.ts"
import { AddressLimits } from "../limits/AddressLimits.ts"
import { Bans } from "../limits/Bans.ts"
import { NodeKey, type NodeKeyShape } from "../crypto/NodeKey.ts"
import { RateLimits } from "../limits/RateLimits.ts"
import { ServerClock } from "../limits/ServerClock.ts"
import { ValidatorPool, type ValidatorPoolShape } from "../validators/ValidatorPool.ts"
import { LegacyPeers } from "./LegacyPeers.ts"
import { LegacyStorage, type LegacyStorageShape } from "./LegacyStorage.ts"

/** The services legacy frame handlers use, captured once so handlers need no context. */
export interface LegacyDeps {
  readonly cfg: NodeConfigShape
  readonly storage: LegacyStorageShape
  readonly validators: ValidatorPoolShape
  readonly peers: typeof LegacyPeers.Service
  readonly clock: typeof ServerClock.Service
  readonly wakeups: typeof BatchWakeups.Service
  readonly crypto: CryptoShape
  readonly addressLimits: typeof AddressLimits.Service
  readonly bans: typeof Bans.Service
  readonly rateLimits: typeof RateLimits.Service
  readonly nodeKey: NodeKeyShape
}

export const make = Effect.all({
  cfg: NodeConfig,
  storage: LegacyStorage,
  validators: ValidatorPool,
  peers: LegacyPeers,
  clock: ServerClock,
  wakeups: BatchWakeups,
  crypto: Crypto,
  addressLimits: AddressLimits,
  bans: Bans,
  rateLimits: RateLimits,
  nodeKey: NodeKey
})
