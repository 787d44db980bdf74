/**
 * The client library for browsers (`demos-im-client/browser`, and what bundlers pick for
 * `demos-im-client`): the same API as the Node entry, with no `node:` module. `openMessenger` keeps
 * the identity and history in IndexedDB, sealed under the passphrase exactly as in a folder on disk
 * (the same stores over a `HomeStorage`), or in memory with `inMemory`.
 */
import * as HomeStorage from "./HomeStorage.ts"
import * as IndexedDbStorage from "./IndexedDbStorage.ts"
import { type MessengerHandle, type MessengerOptions, openWith } from "./OpenMessenger.ts"

export interface OpenOptions extends MessengerOptions {
  /** the IndexedDB database holding this identity and its history (default "demos-im"); one per identity */
  readonly home?: string
  /** keep keys and history in memory only, gone when the page is (tests, a guest) */
  readonly inMemory?: boolean
}

export const DEFAULT_DATABASE = "demos-im"

/** Opens (or creates, on first use) the identity in this browser and connects, unless `connect: false`. */
export const openMessenger = (o: OpenOptions): Promise<MessengerHandle> =>
  openWith(o.inMemory === true ? HomeStorage.memory() : IndexedDbStorage.make(o.home ?? DEFAULT_DATABASE), o)

export { L2PSMessagingPeer, type L2PSMessagingPeerConfig } from "./L2PSMessagingPeer.ts"
export { MessagingPeer, type MessagingPeerConfig } from "./MessagingPeer.ts"
export type { ChatEvent } from "./Messenger.ts"
export { contentOf, type MissedStore, type Payload, payload } from "./Messenger.ts"
export { type ContentType, defineType } from "./content/ContentType.ts"
export type { ChatRecord } from "./MessageStore.ts"
export { type MessengerHandle, type MessengerOptions, openWith } from "./OpenMessenger.ts"
export {
  generateIdentity,
  type Identity,
  messageHashOf,
  openFrom,
  openMessage,
  type Opened,
  openTextFrom,
  sealBound,
  sealFor,
  signFnOf
} from "./L2psCrypto.ts"
export { legacyKeysFromSeed, newMasterSeed } from "./MlKemAes.ts"
export { type KnownMessage, type ProofCheck, verifyProof } from "./Proofs.ts"
export type * from "./Wire.ts"
export * as L2psPeer from "./L2psPeer.ts"
export * as LegacyPeer from "./LegacyPeer.ts"
export * as Messenger from "./Messenger.ts"
export * as MessageStore from "./MessageStore.ts"
export * as SecretStore from "./SecretStore.ts"
export * as L2psCrypto from "./L2psCrypto.ts"
export * as MlKemAes from "./MlKemAes.ts"
export * as Reconnect from "./Reconnect.ts"
export * as OpenMessenger from "./OpenMessenger.ts"
export { HomeStorage, IndexedDbStorage }
