/**
 * A device's prekeys (docs/PROTOCOL.md, "Secure sessions"): a signed X25519 prekey, a signed
 * last-resort ML-KEM-768 key and pools of one-time X25519 and ML-KEM-768 keys, every one signed by the
 * account's ed25519 key over `prekeySigningString` (src/domain/Prekeys.ts). The state is plain data
 * (see StateCodec) and lives in the encrypted secrets store; the node gets only the public halves.
 */
import { ed25519 } from "@noble/curves/ed25519.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import { isStrictPublicKey } from "../../domain/Keys.ts"
import {
  DeviceBundle,
  MLKEM768_KEY_BYTES,
  type PrekeyKind,
  PrekeysPublishPayload,
  prekeySigningString,
  type SignedPreKey,
  X25519_KEY_BYTES
} from "../../domain/Prekeys.ts"
import { utf8 } from "./Bytes.ts"
import { type KeyPair, mlKemKeyPair, randomBytes, x25519KeyPair } from "./KeySource.ts"
import { fail } from "./SecureError.ts"

/** The account key pair: today's L2PS identity (ed25519, public key as 64 hex characters). */
export interface AccountIdentity {
  readonly publicKey: string
  readonly secretKey: Uint8Array
}

export interface OwnPreKey {
  readonly keyId: number
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
  readonly signature: Uint8Array
  /** ms, from the caller's clock */
  readonly createdAt: number
}

export interface DeviceState {
  readonly version: 1
  readonly accountKey: string
  readonly deviceId: number
  readonly registrationId: number
  readonly signedPreKey: OwnPreKey
  /** The one before the last rotation, kept for first messages already under way (docs: one rotation period). */
  readonly previousSignedPreKey?: OwnPreKey
  readonly lastResortKem: OwnPreKey
  readonly previousLastResortKem?: OwnPreKey
  readonly oneTimePreKeys: ReadonlyArray<OwnPreKey>
  readonly oneTimeKems: ReadonlyArray<OwnPreKey>
  readonly nextKeyId: { readonly spk: number; readonly lrk: number; readonly opk: number; readonly okem: number }
  /** 16-byte SHA-256 prefixes of the base keys of first messages taken, newest last: a replayed first message is refused. */
  readonly seenBaseKeys: ReadonlyArray<string>
}

export const DEFAULT_ONE_TIME_PREKEYS = 100
export const DEFAULT_ONE_TIME_KEMS = 25
/** Base keys remembered per device; a first message older than this many sessions is refused by its prekeys anyway once rotated. */
export const MAX_SEEN_BASE_KEYS = 2_000
const MAX_ID = 2 ** 31 - 1

/** A bundle as the node serves it (plain numbers: the Schema's encoded side). */
export type BundleData = typeof DeviceBundle.Encoded
export type PublishData = typeof PrekeysPublishPayload.Encoded

/** 1..2^31-1 from the CSPRNG. */
export const randomId = (): number => {
  const b = randomBytes(4)
  return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) % MAX_ID + 1
}

const sign = (identity: AccountIdentity, kind: PrekeyKind, deviceId: number, registrationId: number, keyId: number, publicKey: Uint8Array) =>
  ed25519.sign(utf8(prekeySigningString(kind, deviceId, registrationId, keyId, bytesToHex(publicKey))), identity.secretKey)

const makeKey = (
  identity: AccountIdentity,
  kind: PrekeyKind,
  deviceId: number,
  registrationId: number,
  keyId: number,
  now: number
): OwnPreKey => {
  const pair: KeyPair = kind === "spk" || kind === "opk" ? x25519KeyPair() : mlKemKeyPair()
  return { keyId, ...pair, signature: sign(identity, kind, deviceId, registrationId, keyId, pair.publicKey), createdAt: now }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** A new device with fresh prekeys and full one-time pools. */
export const createDevice = (
  identity: AccountIdentity,
  options: {
    readonly now: number
    readonly deviceId?: number
    readonly registrationId?: number
    readonly oneTimePreKeys?: number
    readonly oneTimeKems?: number
  }
): DeviceState => {
  const deviceId = options.deviceId ?? randomId()
  const registrationId = options.registrationId ?? randomId()
  const nOpk = options.oneTimePreKeys ?? DEFAULT_ONE_TIME_PREKEYS
  const nOkem = options.oneTimeKems ?? DEFAULT_ONE_TIME_KEMS
  const at = options.now
  return {
    version: 1,
    accountKey: identity.publicKey.toLowerCase(),
    deviceId,
    registrationId,
    signedPreKey: makeKey(identity, "spk", deviceId, registrationId, 0, at),
    lastResortKem: makeKey(identity, "lrk", deviceId, registrationId, 0, at),
    oneTimePreKeys: range(nOpk).map((i) => makeKey(identity, "opk", deviceId, registrationId, i, at)),
    oneTimeKems: range(nOkem).map((i) => makeKey(identity, "okem", deviceId, registrationId, i, at)),
    nextKeyId: { spk: 1, lrk: 1, opk: nOpk, okem: nOkem },
    seenBaseKeys: []
  }
}

const published = (k: OwnPreKey): SignedPreKey => ({ keyId: k.keyId, publicKey: bytesToHex(k.publicKey), signature: bytesToHex(k.signature) })

/** What `prekeys_publish` carries for the whole device: both signed keys and every one-time key. */
export const publishPayload = (device: DeviceState): PublishData => ({
    deviceId: device.deviceId,
    registrationId: device.registrationId,
    signedPreKey: published(device.signedPreKey),
    lastResortKem: published(device.lastResortKem),
    oneTimePreKeys: device.oneTimePreKeys.map(published),
    oneTimeKems: device.oneTimeKems.map(published)
})

/**
 * One-time keys a device keeps per kind. The node hands keys out without telling the device, and a
 * key fetched by someone who never writes stays here: past this many the oldest (lowest ids, handed
 * out first) are retired.
 */
export const MAX_LOCAL_ONE_TIME_KEYS = 1_000
/** Refill when the node holds fewer than this many one-time keys of a kind. */
export const REFILL_BELOW = 10

/** How many one-time keys of each kind to publish, given what the node says it still holds. */
export const refillCounts = (
  onNode: { readonly oneTimePreKeys: number; readonly oneTimeKems: number },
  target: { readonly preKeys: number; readonly kems: number } = { preKeys: DEFAULT_ONE_TIME_PREKEYS, kems: DEFAULT_ONE_TIME_KEMS }
): { readonly preKeys: number; readonly kems: number } => ({
  preKeys: onNode.oneTimePreKeys < REFILL_BELOW ? Math.max(0, target.preKeys - onNode.oneTimePreKeys) : 0,
  kems: onNode.oneTimeKems < REFILL_BELOW ? Math.max(0, target.kems - onNode.oneTimeKems) : 0
})

/**
 * Adds one-time keys to the pools (a refill); returns the new state, the public keys to publish, and
 * the keys retired past `MAX_LOCAL_ONE_TIME_KEYS` (erase them once the new state is stored).
 */
export const addOneTimeKeys = (
  device: DeviceState,
  identity: AccountIdentity,
  counts: { readonly preKeys: number; readonly kems: number; readonly now: number }
): {
  readonly device: DeviceState
  readonly oneTimePreKeys: ReadonlyArray<SignedPreKey>
  readonly oneTimeKems: ReadonlyArray<SignedPreKey>
  readonly retired: ReadonlyArray<OwnPreKey>
} => {
  const opk = range(counts.preKeys).map((i) => makeKey(identity, "opk", device.deviceId, device.registrationId, (device.nextKeyId.opk + i) % (MAX_ID + 1), counts.now))
  const okem = range(counts.kems).map((i) => makeKey(identity, "okem", device.deviceId, device.registrationId, (device.nextKeyId.okem + i) % (MAX_ID + 1), counts.now))
  const preKeys = [...device.oneTimePreKeys, ...opk]
  const kems = [...device.oneTimeKems, ...okem]
  const dropPre = Math.max(0, preKeys.length - MAX_LOCAL_ONE_TIME_KEYS)
  const dropKem = Math.max(0, kems.length - MAX_LOCAL_ONE_TIME_KEYS)
  return {
    device: {
      ...device,
      oneTimePreKeys: preKeys.slice(dropPre),
      oneTimeKems: kems.slice(dropKem),
      nextKeyId: { ...device.nextKeyId, opk: device.nextKeyId.opk + counts.preKeys, okem: device.nextKeyId.okem + counts.kems }
    },
    oneTimePreKeys: opk.map(published),
    oneTimeKems: okem.map(published),
    retired: [...preKeys.slice(0, dropPre), ...kems.slice(0, dropKem)]
  }
}

/** Whether the signed prekeys are due for rotation (`everyMs` after they were made; one week by default). */
export const rotationDue = (device: DeviceState, now: number, everyMs = 7 * 24 * 3_600_000): boolean =>
  now - device.signedPreKey.createdAt >= everyMs

/**
 * New signed X25519 and last-resort ML-KEM keys; the current ones become the previous ones (first
 * messages already sent to them still open). The ones before are `retired`: erase them (`wipe` their
 * secret keys) once the new state is stored, not before, so that a failed write loses nothing.
 */
export const rotateSignedPreKeys = (
  device: DeviceState,
  identity: AccountIdentity,
  now: number
): { readonly device: DeviceState; readonly retired: ReadonlyArray<OwnPreKey> } => ({
  device: {
    ...device,
    previousSignedPreKey: device.signedPreKey,
    previousLastResortKem: device.lastResortKem,
    signedPreKey: makeKey(identity, "spk", device.deviceId, device.registrationId, device.nextKeyId.spk, now),
    lastResortKem: makeKey(identity, "lrk", device.deviceId, device.registrationId, device.nextKeyId.lrk, now),
    nextKeyId: { ...device.nextKeyId, spk: device.nextKeyId.spk + 1, lrk: device.nextKeyId.lrk + 1 }
  },
  retired: [device.previousSignedPreKey, device.previousLastResortKem].filter((k): k is OwnPreKey => k !== undefined)
})

/** A bundle whose signatures checked: the bytes PQXDH needs. */
export interface VerifiedBundle {
  readonly accountKey: Uint8Array
  readonly deviceId: number
  readonly registrationId: number
  readonly signedPreKey: { readonly keyId: number; readonly publicKey: Uint8Array }
  /** The one-time ML-KEM key when the node had one, else the last-resort key. */
  readonly kem: { readonly oneTime: boolean; readonly keyId: number; readonly publicKey: Uint8Array }
  readonly oneTimePreKey?: { readonly keyId: number; readonly publicKey: Uint8Array }
}

const HEX_KEY = /^[0-9a-f]+$/

const checked = (accountKey: Uint8Array, kind: PrekeyKind, deviceId: number, registrationId: number, key: SignedPreKey) => {
  const bytes = kind === "spk" || kind === "opk" ? X25519_KEY_BYTES : MLKEM768_KEY_BYTES
  if (!Number.isInteger(key.keyId) || key.keyId < 0 || key.keyId > MAX_ID) fail("Malformed", `${kind}: keyId out of range`)
  if (key.publicKey.length !== 2 * bytes || !HEX_KEY.test(key.publicKey)) fail("Malformed", `${kind}: public key must be ${bytes} bytes of lowercase hex`)
  if (key.signature.length !== 128 || !HEX_KEY.test(key.signature)) fail("Malformed", `${kind}: signature must be 64 bytes of lowercase hex`)
  const message = utf8(prekeySigningString(kind, deviceId, registrationId, key.keyId, key.publicKey))
  let ok = false
  try {
    ok = ed25519.verify(hexToBytes(key.signature), message, accountKey)
  } catch {
    ok = false
  }
  if (!ok) fail("BadSignature", `${kind} ${key.keyId} of device ${deviceId}: the account's signature does not verify`)
  return { keyId: key.keyId, publicKey: hexToBytes(key.publicKey) }
}

/** Checks every signature of a fetched bundle against the account key (hex); throws `BadSignature` or `Malformed`. */
export const verifyBundle = (accountKeyHex: string, bundle: BundleData): VerifiedBundle => {
  if (!/^[0-9a-fA-F]{64}$/.test(accountKeyHex)) fail("Malformed", "account key must be 64 hex characters")
  const accountKey = hexToBytes(accountKeyHex.toLowerCase())
  if (!isStrictPublicKey(accountKey)) fail("Malformed", "account key is not a usable ed25519 key")
  const { deviceId, registrationId } = bundle
  for (const id of [deviceId, registrationId]) {
    if (!Number.isInteger(id) || id < 1 || id > MAX_ID) fail("Malformed", "deviceId and registrationId must be 1..2^31-1")
  }
  const signedPreKey = checked(accountKey, "spk", deviceId, registrationId, bundle.signedPreKey)
  const oneTimePreKey = bundle.oneTimePreKey === undefined ? undefined : checked(accountKey, "opk", deviceId, registrationId, bundle.oneTimePreKey)
  const kem = bundle.oneTimeKem === undefined
    ? { oneTime: false, ...checked(accountKey, "lrk", deviceId, registrationId, bundle.lastResortKem) }
    : { oneTime: true, ...checked(accountKey, "okem", deviceId, registrationId, bundle.oneTimeKem) }
  return { accountKey, deviceId, registrationId, signedPreKey, kem, ...(oneTimePreKey === undefined ? {} : { oneTimePreKey }) }
}

/** The bundle a node would serve for this device, taking the first one-time key of each pool (tests, local use). */
export const bundleOf = (device: DeviceState, take: { readonly oneTimePreKey?: boolean; readonly oneTimeKem?: boolean } = {}): BundleData => {
  const opk = take.oneTimePreKey === false ? undefined : device.oneTimePreKeys[0]
  const okem = take.oneTimeKem === false ? undefined : device.oneTimeKems[0]
  return {
    deviceId: device.deviceId,
    registrationId: device.registrationId,
    signedPreKey: published(device.signedPreKey),
    lastResortKem: published(device.lastResortKem),
    ...(opk === undefined ? {} : { oneTimePreKey: published(opk) }),
    ...(okem === undefined ? {} : { oneTimeKem: published(okem) })
  }
}

export const baseKeyTag = (baseKey: Uint8Array): string => bytesToHex(sha256(baseKey).subarray(0, 16))
