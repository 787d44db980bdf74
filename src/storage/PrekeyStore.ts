import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { SignedPreKey } from "../domain/Prekeys.ts"
import type { StorageError } from "./Storage.ts"

/** A device of an account in a network: the unit prekeys are published, counted and served by. */
export interface DeviceRef {
  readonly l2psUid: string
  /** The account's ed25519 key, lower case. */
  readonly account: string
  readonly deviceId: number
}

/** What one `prekeys_publish` stores, its signatures already checked. */
export interface PrekeyUpload extends DeviceRef {
  readonly registrationId: number
  /** Replace the stored ones; required when the device (or its registration id) is new. */
  readonly signedPreKey?: SignedPreKey | undefined
  readonly lastResortKem?: SignedPreKey | undefined
  /** Added to the pools; a key id already there is replaced. */
  readonly oneTimePreKeys: ReadonlyArray<SignedPreKey>
  readonly oneTimeKems: ReadonlyArray<SignedPreKey>
  readonly at: number
  /** Most devices the account may have (a new device past it is refused). */
  readonly maxDevices: number
  /** Most one-time keys of each kind a device may hold. */
  readonly maxPerKind: number
}

export interface OneTimeCounts {
  readonly oneTimePreKeys: number
  readonly oneTimeKems: number
}

export type PublishResult =
  | ({ readonly _tag: "Published" } & OneTimeCounts)
  /** A new device, and the account already has `limit`. */
  | { readonly _tag: "DeviceLimit"; readonly limit: number }
  /** The pool of `kind` would hold more than `limit`; nothing stored. */
  | { readonly _tag: "PoolFull"; readonly kind: "opk" | "okem"; readonly limit: number }
  /** A new device or a new registration id, without both signed keys: nothing stored. */
  | { readonly _tag: "SignedKeysMissing" }

/** One device's bundle, its one-time keys taken out of the pools as it was read. */
export interface ClaimedBundle {
  readonly deviceId: number
  readonly registrationId: number
  readonly signedPreKey: SignedPreKey
  readonly lastResortKem: SignedPreKey
  readonly oneTimePreKey?: SignedPreKey | undefined
  readonly oneTimeKem?: SignedPreKey | undefined
}

export interface DeviceSummary extends OneTimeCounts {
  readonly deviceId: number
  readonly registrationId: number
  readonly updatedAt: number
}

/** Public prekeys of devices; every write is committed before it returns. */
export interface PrekeyStoreShape {
  /** Stores a device's keys in one transaction: all of them, or nothing and the reason. */
  readonly publish: (upload: PrekeyUpload) => Effect.Effect<PublishResult, StorageError>
  /** The one-time keys left for a device; undefined for a device never published. */
  readonly counts: (device: DeviceRef) => Effect.Effect<OneTimeCounts | undefined, StorageError>
  /**
   * The bundles of every device of `account`, by device id, each with one one-time key of each kind
   * while its pools hold any. A key is deleted as it is taken: concurrent claims never get the same one.
   */
  readonly claim: (l2psUid: string, account: string) => Effect.Effect<ReadonlyArray<ClaimedBundle>, StorageError>
  readonly devices: (l2psUid: string, account: string) => Effect.Effect<ReadonlyArray<DeviceSummary>, StorageError>
  /** Removes a device and its pools; false when there was none. */
  readonly remove: (device: DeviceRef) => Effect.Effect<boolean, StorageError>
}

export class PrekeyStore extends Context.Tag("im/PrekeyStore")<PrekeyStore, PrekeyStoreShape>() {}
