/**
 * PQXDH with ML-KEM-768 (docs/PROTOCOL.md, "Secure sessions"): a session from a fetched bundle while
 * its device is offline, and the matching session from the first message.
 *
 *   SK = HKDF-SHA256(ikm = 0xFF×32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS, salt = 0×32, info = INFO, 64 bytes)
 *   DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B),
 *   (CT, SS) = ML-KEM-768.Encapsulate(the one-time KEM key, or the last-resort one)
 *
 * The first 32 bytes are the root key, the last 32 the key of ML-KEM epoch 0. The identity keys are
 * the accounts' ed25519 keys in their X25519 form. Authentication is classical, as in Signal's PQXDH:
 * it rests on the ed25519 account key and X25519; confidentiality needs X25519 and ML-KEM both broken.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { hexToBytes } from "@noble/hashes/utils.js"
import { concat, u32, utf8, wipe } from "./Bytes.ts"
import { type AccountIdentity, baseKeyTag, type BundleData, type DeviceState, MAX_SEEN_BASE_KEYS, type OwnPreKey, verifyBundle } from "./DeviceKeys.ts"
import type { Envelope } from "./Envelope.ts"
import { mlKemDecapsulate, mlKemEncapsulate, x25519KeyPair } from "./KeySource.ts"
import { kdfRoot, PQ_EVERY_MESSAGES, PQ_EVERY_MS, type SessionState } from "./Ratchet.ts"
import { fail } from "./SecureError.ts"

const INFO = utf8("demos-im/pqxdh/v1|X25519|ML-KEM-768|SHA-256")
const AD_LABEL = utf8("demos-im/secure/v1")
const F = new Uint8Array(32).fill(0xff)

export interface Cadence {
  readonly everyMessages: number
  readonly everyMs: number
}

export const defaultCadence: Cadence = { everyMessages: PQ_EVERY_MESSAGES, everyMs: PQ_EVERY_MS }

/** Associated data of every message of the session: who talks to whom, down to the installation. */
export const associatedData = (
  initiator: { readonly account: Uint8Array; readonly device: number; readonly registrationId: number },
  responder: { readonly account: Uint8Array; readonly device: number; readonly registrationId: number }
): Uint8Array =>
  concat(
    AD_LABEL,
    initiator.account,
    u32(initiator.device),
    u32(initiator.registrationId),
    responder.account,
    u32(responder.device),
    u32(responder.registrationId)
  )

const sessionSecret = (dhs: ReadonlyArray<Uint8Array>, kem: Uint8Array) => {
  const ikm = concat(F, ...dhs, kem)
  const out = hkdf(sha256, ikm, new Uint8Array(32), INFO, 64)
  wipe(ikm, ...dhs, kem)
  return { rootKey: out.slice(0, 32), epochKey: out.slice(32, 64) }
}

/**
 * The initiator's session with one device of `peerAccount`, from its bundle (signatures checked here).
 * Its messages carry the PQXDH part until the first reply.
 */
export const initiate = (
  identity: AccountIdentity,
  device: DeviceState,
  peerAccount: string,
  bundle: BundleData,
  now: number,
  cadence: Cadence = defaultCadence
): SessionState => {
  const b = verifyBundle(peerAccount, bundle)
  const ikA = ed25519.utils.toMontgomerySecret(identity.secretKey)
  const IKB = ed25519.utils.toMontgomery(b.accountKey)
  const ek = x25519KeyPair()
  const spk = b.signedPreKey.publicKey
  const dhs = [x25519.getSharedSecret(ikA, spk), x25519.getSharedSecret(ek.secretKey, IKB), x25519.getSharedSecret(ek.secretKey, spk)]
  if (b.oneTimePreKey !== undefined) dhs.push(x25519.getSharedSecret(ek.secretKey, b.oneTimePreKey.publicKey))
  const { cipherText, sharedSecret } = mlKemEncapsulate(b.kem.publicKey)
  const sk = sessionSecret(dhs, sharedSecret)
  wipe(ikA, ek.secretKey)
  // The first sending chain: a fresh ratchet key against the signed prekey (the responder's first ratchet key).
  const dhSelf = x25519KeyPair()
  const out = x25519.getSharedSecret(dhSelf.secretKey, spk)
  const [rootKey, chainKey] = kdfRoot(sk.rootKey, out)
  wipe(out, sk.rootKey)
  return {
    version: 1,
    peer: peerAccount.toLowerCase(),
    peerDevice: b.deviceId,
    peerRegistrationId: b.registrationId,
    myDevice: device.deviceId,
    myRegistrationId: device.registrationId,
    initiator: true,
    ad: associatedData(
      { account: hexToBytes(identity.publicKey.toLowerCase()), device: device.deviceId, registrationId: device.registrationId },
      { account: b.accountKey, device: b.deviceId, registrationId: b.registrationId }
    ),
    rootKey,
    dhSelf,
    dhRemote: spk.slice(),
    send: { key: chainKey, n: 0 },
    pn: 0,
    skipped: [],
    previousRemotes: [],
    prekey: {
      senderRegistrationId: device.registrationId,
      recipientRegistrationId: b.registrationId,
      signedPreKeyId: b.signedPreKey.keyId,
      kemOneTime: b.kem.oneTime,
      kemKeyId: b.kem.keyId,
      ...(b.oneTimePreKey === undefined ? {} : { oneTimePreKeyId: b.oneTimePreKey.keyId }),
      baseKey: ek.publicKey,
      kemCiphertext: cipherText
    },
    pq: { sendEpoch: 0, keys: [{ epoch: 0, key: sk.epochKey }], inEpoch: 0, epochStartedAt: now, everyMessages: cadence.everyMessages, everyMs: cadence.everyMs }
  }
}

/**
 * The responder's session from a first message (not yet decrypted: the caller opens the message with
 * it and keeps both only if it opens). Returns the device without the one-time keys the message used
 * (their secrets listed in `consumed`, to erase once the new states are stored).
 */
export const respond = (
  identity: AccountIdentity,
  device: DeviceState,
  peerAccount: string,
  envelope: Envelope,
  now: number,
  cadence: Cadence = defaultCadence
): { readonly session: SessionState; readonly device: DeviceState; readonly consumed: ReadonlyArray<OwnPreKey> } => {
  const h = envelope.header
  const p = h.prekey
  if (p === undefined) return fail("NoSession", "no session with this device and the message is not a first message")
  if (!/^[0-9a-fA-F]{64}$/.test(peerAccount)) fail("Malformed", "peer account key must be 64 hex characters")
  if (p.recipientRegistrationId !== device.registrationId) fail("UnknownPrekey", "a first message for another installation of this device")
  const spk = [device.signedPreKey, device.previousSignedPreKey].find((k) => k?.keyId === p.signedPreKeyId)
  if (spk === undefined) return fail("UnknownPrekey", `signed prekey ${p.signedPreKeyId} is not (or no longer) this device's`)
  const kem = p.kemOneTime
    ? device.oneTimeKems.find((k) => k.keyId === p.kemKeyId)
    : [device.lastResortKem, device.previousLastResortKem].find((k) => k?.keyId === p.kemKeyId)
  if (kem === undefined) return fail("UnknownPrekey", `ML-KEM prekey ${p.kemKeyId} is not (or no longer) this device's`)
  const opk = p.oneTimePreKeyId === undefined ? undefined : device.oneTimePreKeys.find((k) => k.keyId === p.oneTimePreKeyId)
  if (p.oneTimePreKeyId !== undefined && opk === undefined) fail("UnknownPrekey", `one-time prekey ${p.oneTimePreKeyId} was used already`)
  const tag = baseKeyTag(p.baseKey)
  if (device.seenBaseKeys.includes(tag)) fail("Replay", "a first message whose session was set up already")
  const IKA = ed25519.utils.toMontgomery(hexToBytes(peerAccount.toLowerCase()))
  const ikB = ed25519.utils.toMontgomerySecret(identity.secretKey)
  let sk: { readonly rootKey: Uint8Array; readonly epochKey: Uint8Array }
  try {
    const dhs = [x25519.getSharedSecret(spk.secretKey, IKA), x25519.getSharedSecret(ikB, p.baseKey), x25519.getSharedSecret(spk.secretKey, p.baseKey)]
    if (opk !== undefined) dhs.push(x25519.getSharedSecret(opk.secretKey, p.baseKey))
    sk = sessionSecret(dhs, mlKemDecapsulate(p.kemCiphertext, kem.secretKey))
  } catch (e) {
    return fail("DecryptFailed", `the first message does not open: ${e instanceof Error ? e.message : String(e)}`)
  } finally {
    wipe(ikB)
  }
  const session: SessionState = {
    version: 1,
    peer: peerAccount.toLowerCase(),
    peerDevice: h.senderDevice,
    peerRegistrationId: p.senderRegistrationId,
    myDevice: device.deviceId,
    myRegistrationId: device.registrationId,
    initiator: false,
    ad: associatedData(
      { account: hexToBytes(peerAccount.toLowerCase()), device: h.senderDevice, registrationId: p.senderRegistrationId },
      { account: hexToBytes(device.accountKey), device: device.deviceId, registrationId: device.registrationId }
    ),
    rootKey: sk.rootKey,
    dhSelf: { publicKey: spk.publicKey.slice(), secretKey: spk.secretKey.slice() },
    pn: 0,
    skipped: [],
    previousRemotes: [],
    baseKey: p.baseKey.slice(),
    pq: { sendEpoch: 0, keys: [{ epoch: 0, key: sk.epochKey }], inEpoch: 0, epochStartedAt: now, everyMessages: cadence.everyMessages, everyMs: cadence.everyMs }
  }
  const consumed = [opk, p.kemOneTime ? kem : undefined].filter((k): k is OwnPreKey => k !== undefined)
  return {
    session,
    consumed,
    device: {
      ...device,
      oneTimePreKeys: opk === undefined ? device.oneTimePreKeys : device.oneTimePreKeys.filter((k) => k !== opk),
      oneTimeKems: p.kemOneTime ? device.oneTimeKems.filter((k) => k !== kem) : device.oneTimeKems,
      seenBaseKeys: [...device.seenBaseKeys.slice(-(MAX_SEEN_BASE_KEYS - 1)), tag]
    }
  }
}
