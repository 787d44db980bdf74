/**
 * Client library for Node and Bun (`demos-im-client`; `browser.ts` is the browser's, with the same
 * API over IndexedDB). Promise API: `openMessenger` (a whole chat client, keys and history in a folder),
 * `L2PSMessagingPeer` and `MessagingPeer` (the SDK's classes). Effect API: `Messenger`, `L2psPeer`
 * and `LegacyPeer` (services with Streams of events). Crypto: `L2psCrypto` (end-to-end encryption
 * over the L2PS server), `MlKemAes` (the SDK's `ml-kem-aes`), `verifyProof` (inclusion proofs).
 */
export { L2PSMessagingPeer, type L2PSMessagingPeerConfig } from "./L2PSMessagingPeer.ts"
export { MessagingPeer, type MessagingPeerConfig } from "./MessagingPeer.ts"
export type { ChatEvent } from "./Messenger.ts"
export { contentOf, type MissedStore, type Payload, payload } from "./Messenger.ts"
export type { ChatRecord } from "./MessageStore.ts"
export { type MessengerHandle, openMessenger, type OpenOptions } from "./Home.ts"
export { type MessengerOptions, openWith } from "./OpenMessenger.ts"
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
export * as Home from "./Home.ts"
export * as MessageStore from "./MessageStore.ts"
export * as SecretStore from "./SecretStore.ts"
export * as L2psCrypto from "./L2psCrypto.ts"
export * as MlKemAes from "./MlKemAes.ts"
export * as Reconnect from "./Reconnect.ts"
export * as Secure from "./secure/index.ts"
export { InviteError, type InviteErrorReason } from "./Invite.ts"
export type { InviteOptions, Joined } from "./Invites.ts"
export * as Invite from "./Invite.ts"
export * as Content from "./content/Content.ts"
export * as ContentType from "./content/ContentType.ts"
export { defineType } from "./content/ContentType.ts"
export * as MissedTracker from "./content/MissedTracker.ts"
export * as Outbox from "./Outbox.ts"
export * as OpenMessenger from "./OpenMessenger.ts"
export * as HomeStorage from "./HomeStorage.ts"
export * as FolderStorage from "./FolderStorage.ts"
