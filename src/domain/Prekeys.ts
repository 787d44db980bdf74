/**
 * The signed prekey format of secure sessions (docs/PROTOCOL.md, "Prekeys"): what a device publishes,
 * what the node stores and serves, and the string every prekey's signature covers. Shared by the node,
 * which checks and serves the keys, and the client, which makes and uses them.
 *
 * A device is `(account key, deviceId)`; the account key is the ed25519 key the session registered
 * with, and it signs every prekey of every device of the account.
 */
import * as Schema from "effect/Schema"
import { PublicKey } from "./Ids.ts"

/** `spk` signed X25519 prekey, `lrk` last-resort ML-KEM-768 key, `opk` one-time X25519, `okem` one-time ML-KEM-768. */
export const PrekeyKind = Schema.Literal("spk", "lrk", "opk", "okem")
export type PrekeyKind = typeof PrekeyKind.Type

export const X25519_KEY_BYTES = 32
export const MLKEM768_KEY_BYTES = 1184
export const SIGNATURE_BYTES = 64

/** Bytes of the public key each kind holds. */
export const keyBytesOf = (kind: PrekeyKind): number => kind === "spk" || kind === "opk" ? X25519_KEY_BYTES : MLKEM768_KEY_BYTES

/** One-time keys of each kind a device may have waiting on a node. */
export const MAX_ONE_TIME_KEYS_PER_KIND = 200
/** One-time keys of each kind one `prekeys_publish` may carry: 50 ML-KEM keys are ~127,000 characters, half a frame. */
export const MAX_PUBLISH_ONE_TIME_PREKEYS = 100
export const MAX_PUBLISH_ONE_TIME_KEMS = 50

const MAX_ID = 2 ** 31 - 1

/** Chosen by the device: 1..2^31-1, unique within its account. */
export const DeviceId = Schema.Int.pipe(Schema.between(1, MAX_ID), Schema.brand("DeviceId"))
export type DeviceId = typeof DeviceId.Type

/** 1..2^31-1, changed when the device is reinstalled: a sender with sessions for the old one starts over. */
export const RegistrationId = Schema.Int.pipe(Schema.between(1, MAX_ID), Schema.brand("RegistrationId"))
export type RegistrationId = typeof RegistrationId.Type

/** 0..2^31-1, unique per device and kind. */
export const KeyId = Schema.Int.pipe(Schema.between(0, MAX_ID), Schema.brand("KeyId"))
export type KeyId = typeof KeyId.Type

const lowerHex = (bytes: number, name: string) =>
  Schema.String.pipe(
    Schema.pattern(new RegExp(`^[0-9a-f]{${2 * bytes}}$`), { description: `${name}: ${bytes} bytes as lowercase hex` })
  )

export const X25519PublicKeyHex = lowerHex(X25519_KEY_BYTES, "an X25519 public key")
export const MlKem768PublicKeyHex = lowerHex(MLKEM768_KEY_BYTES, "an ML-KEM-768 public key")
/** ed25519 by the account key over `prekeySigningString`'s UTF-8 bytes. */
export const PrekeySignatureHex = lowerHex(SIGNATURE_BYTES, "an ed25519 signature")

const signedKey = <S extends Schema.Schema<string, string>>(publicKey: S) =>
  Schema.Struct({ keyId: KeyId, publicKey, signature: PrekeySignatureHex })

/** A signed X25519 prekey (`spk`, `opk`). */
export const SignedX25519PreKey = signedKey(X25519PublicKeyHex)
export type SignedX25519PreKey = typeof SignedX25519PreKey.Type
/** A signed ML-KEM-768 prekey (`lrk`, `okem`). */
export const SignedKemPreKey = signedKey(MlKem768PublicKeyHex)
export type SignedKemPreKey = typeof SignedKemPreKey.Type

const Q = 3329

/**
 * FIPS 203's check of an ML-KEM-768 encapsulation key (7.2, "modulus check"): its 1,152 bytes of 12-bit
 * coefficients each below q = 3329 (then 32 bytes of seed). A key that fails it cannot be encapsulated
 * to; the node refuses it on upload so that no sender's session setup fails on it.
 */
export const isMlKem768PublicKeyHex = (hex: string): boolean => {
  if (hex.length !== 2 * MLKEM768_KEY_BYTES) return false
  const byte = (i: number) => parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  for (let i = 0; i < 1152; i += 3) {
    const b0 = byte(i)
    const b1 = byte(i + 1)
    const b2 = byte(i + 2)
    if ((b0 | ((b1 & 0x0f) << 8)) >= Q || ((b1 >> 4) | (b2 << 4)) >= Q) return false
  }
  return true
}

/** Any signed prekey, as stored and served: `{ keyId, publicKey, signature }`. */
export interface SignedPreKey {
  readonly keyId: number
  readonly publicKey: string
  readonly signature: string
}

/**
 * The string an account key signs for one prekey (UTF-8 bytes): binds the key to its kind, its device,
 * the device's installation and its id, so that no key can be replayed as another kind, for another
 * device or after a reinstall.
 */
export const prekeySigningString = (
  kind: PrekeyKind,
  deviceId: number,
  registrationId: number,
  keyId: number,
  publicKeyHex: string
): string => `demos-im/prekey/v1|${kind}|${deviceId}|${registrationId}|${keyId}|${publicKeyHex}`

/** One device's bundle as the node serves it; the one-time keys absent when its pool is empty. */
export const DeviceBundle = Schema.Struct({
  deviceId: DeviceId,
  registrationId: RegistrationId,
  signedPreKey: SignedX25519PreKey,
  lastResortKem: SignedKemPreKey,
  oneTimePreKey: Schema.optionalWith(SignedX25519PreKey, { exact: true }),
  oneTimeKem: Schema.optionalWith(SignedKemPreKey, { exact: true })
})
export type DeviceBundle = typeof DeviceBundle.Type

// ---- frames (docs/PROTOCOL.md, "Prekeys") ----

/**
 * `prekeys_publish`: a device's keys. The first publish of a device (or of a new `registrationId`, which
 * drops the old installation's keys) must carry `signedPreKey` and `lastResortKem`; later ones replace
 * whichever they carry and add their one-time keys to the pools.
 */
export const PrekeysPublishPayload = Schema.Struct({
  deviceId: DeviceId,
  registrationId: RegistrationId,
  signedPreKey: Schema.optionalWith(SignedX25519PreKey, { exact: true }),
  lastResortKem: Schema.optionalWith(SignedKemPreKey, { exact: true }),
  oneTimePreKeys: Schema.optionalWith(Schema.Array(SignedX25519PreKey).pipe(Schema.maxItems(MAX_PUBLISH_ONE_TIME_PREKEYS)), { exact: true }),
  oneTimeKems: Schema.optionalWith(Schema.Array(SignedKemPreKey).pipe(Schema.maxItems(MAX_PUBLISH_ONE_TIME_KEMS)), { exact: true })
})
export type PrekeysPublishPayload = typeof PrekeysPublishPayload.Type

/** `prekeys_count` and `device_remove`: one device of the session's own account. */
export const DevicePayload = Schema.Struct({ deviceId: DeviceId })

/** `bundle_fetch`: the bundles of every device of `publicKey`. */
export const BundleFetchPayload = Schema.Struct({ publicKey: PublicKey })

/** Reply to `prekeys_publish` and `prekeys_count`: the one-time keys left in the device's pools. */
export const PrekeyCounts = Schema.Struct({
  deviceId: DeviceId,
  oneTimePreKeys: Schema.Int,
  oneTimeKems: Schema.Int
})
export type PrekeyCounts = typeof PrekeyCounts.Type

/** Reply to `bundle_fetch`: no devices when the key has published none. */
export const BundleResponse = Schema.Struct({
  publicKey: PublicKey,
  devices: Schema.Array(DeviceBundle)
})
export type BundleResponse = typeof BundleResponse.Type

/** One device as `devices_response` lists it: `publishedAt`/`updatedAt` server ms. */
export const DeviceInfo = Schema.Struct({
  deviceId: DeviceId,
  registrationId: RegistrationId,
  oneTimePreKeys: Schema.Int,
  oneTimeKems: Schema.Int,
  updatedAt: Schema.Number
})
export type DeviceInfo = typeof DeviceInfo.Type

export const DevicesResponse = Schema.Struct({ devices: Schema.Array(DeviceInfo) })

export const DeviceRemoved = Schema.Struct({ deviceId: DeviceId, removed: Schema.Boolean })
