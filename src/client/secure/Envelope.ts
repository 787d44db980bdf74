/**
 * The wire form of a secure-session message (docs/PROTOCOL.md, "Secure sessions"): a version byte,
 * a compact header (about 40 bytes), the optional first-message (PQXDH) and ML-KEM ratchet parts,
 * then the AEAD ciphertext. The whole header is the AEAD's associated data, so a changed bit in it
 * fails authentication. Today's L2PS scheme (`x25519-aes-256-gcm/v1`) has no version byte and keeps
 * its own JSON shape, with an `ephemeralKey`: `schemeOf` tells the two apart.
 */
import { concat, Reader, varint } from "./Bytes.ts"
import { ML_KEM_CIPHERTEXT_BYTES, ML_KEM_PUBLIC_BYTES } from "./KeySource.ts"
import { fail, SecureError } from "./SecureError.ts"

export const VERSION_1 = 0x01

const PREKEY = 0x01
const ONE_TIME_PREKEY = 0x02
const ONE_TIME_KEM = 0x04
const PQ_KEY = 0x08
const PQ_CIPHERTEXT = 0x10
const KNOWN_FLAGS = PREKEY | ONE_TIME_PREKEY | ONE_TIME_KEM | PQ_KEY | PQ_CIPHERTEXT

export const TAG_BYTES = 16

/** The PQXDH part, sent with every message of the initiator until the first reply arrives. */
export interface PrekeyPart {
  readonly senderRegistrationId: number
  readonly recipientRegistrationId: number
  readonly signedPreKeyId: number
  readonly kemOneTime: boolean
  readonly kemKeyId: number
  readonly oneTimePreKeyId?: number
  /** EK_A, the initiator's ephemeral X25519 key */
  readonly baseKey: Uint8Array
  /** ML-KEM-768 ciphertext to the bundle's KEM key */
  readonly kemCiphertext: Uint8Array
}

export interface Header {
  readonly senderDevice: number
  /** the sender's current ratchet key (X25519) */
  readonly dh: Uint8Array
  readonly n: number
  readonly pn: number
  /** the ML-KEM epoch whose key this message's key mixes in */
  readonly epoch: number
  readonly prekey?: PrekeyPart
  /** an ML-KEM-768 encapsulation key opening epoch `epoch` of the PQ ratchet */
  readonly pqKey?: { readonly epoch: number; readonly publicKey: Uint8Array }
  /** the ciphertext answering the peer's encapsulation key of epoch `epoch` */
  readonly pqCiphertext?: { readonly epoch: number; readonly cipherText: Uint8Array }
}

export const encodeHeader = (h: Header): Uint8Array => {
  if (h.pqKey !== undefined && h.pqCiphertext !== undefined) throw new Error("a header carries one ML-KEM part at most")
  const p = h.prekey
  const flags = (p === undefined ? 0 : PREKEY | (p.oneTimePreKeyId === undefined ? 0 : ONE_TIME_PREKEY) | (p.kemOneTime ? ONE_TIME_KEM : 0)) |
    (h.pqKey === undefined ? 0 : PQ_KEY) | (h.pqCiphertext === undefined ? 0 : PQ_CIPHERTEXT)
  const parts: Array<Uint8Array> = [
    Uint8Array.of(VERSION_1, flags),
    varint(h.senderDevice),
    h.dh,
    varint(h.n),
    varint(h.pn),
    varint(h.epoch)
  ]
  if (p !== undefined) {
    parts.push(varint(p.senderRegistrationId), varint(p.recipientRegistrationId), varint(p.signedPreKeyId), varint(p.kemKeyId))
    if (p.oneTimePreKeyId !== undefined) parts.push(varint(p.oneTimePreKeyId))
    parts.push(p.baseKey, p.kemCiphertext)
  }
  if (h.pqKey !== undefined) parts.push(varint(h.pqKey.epoch), h.pqKey.publicKey)
  if (h.pqCiphertext !== undefined) parts.push(varint(h.pqCiphertext.epoch), h.pqCiphertext.cipherText)
  return concat(...parts)
}

export interface Envelope {
  readonly header: Header
  /** the header's bytes as received: the AEAD's associated data */
  readonly headerBytes: Uint8Array
  /** ciphertext ‖ 16-byte tag */
  readonly body: Uint8Array
}

export const decodeEnvelope = (bytes: Uint8Array): Envelope => {
  const r = new Reader(bytes)
  const version = r.u8()
  if (version !== VERSION_1) fail("Malformed", `unknown secure message version ${version}`)
  const flags = r.u8()
  if ((flags & ~KNOWN_FLAGS) !== 0) throw SecureError.malformed("unknown flags")
  if ((flags & PQ_KEY) !== 0 && (flags & PQ_CIPHERTEXT) !== 0) throw SecureError.malformed("two ML-KEM parts")
  if ((flags & PREKEY) === 0 && (flags & (ONE_TIME_PREKEY | ONE_TIME_KEM)) !== 0) throw SecureError.malformed("prekey flags without a prekey part")
  const senderDevice = r.varint()
  const dh = r.take(32)
  const n = r.varint()
  const pn = r.varint()
  const epoch = r.varint()
  let prekey: PrekeyPart | undefined
  if ((flags & PREKEY) !== 0) {
    const senderRegistrationId = r.varint()
    const recipientRegistrationId = r.varint()
    const signedPreKeyId = r.varint()
    const kemKeyId = r.varint()
    const oneTimePreKeyId = (flags & ONE_TIME_PREKEY) !== 0 ? r.varint() : undefined
    const baseKey = r.take(32)
    const kemCiphertext = r.take(ML_KEM_CIPHERTEXT_BYTES)
    prekey = {
      senderRegistrationId,
      recipientRegistrationId,
      signedPreKeyId,
      kemOneTime: (flags & ONE_TIME_KEM) !== 0,
      kemKeyId,
      ...(oneTimePreKeyId === undefined ? {} : { oneTimePreKeyId }),
      baseKey,
      kemCiphertext
    }
  }
  const pqKey = (flags & PQ_KEY) !== 0 ? { epoch: r.varint(), publicKey: r.take(ML_KEM_PUBLIC_BYTES) } : undefined
  const pqCiphertext = (flags & PQ_CIPHERTEXT) !== 0 ? { epoch: r.varint(), cipherText: r.take(ML_KEM_CIPHERTEXT_BYTES) } : undefined
  const headerBytes = bytes.subarray(0, r.offset)
  const body = r.rest()
  if (body.length < TAG_BYTES) throw SecureError.malformed("ciphertext shorter than its tag")
  return {
    header: {
      senderDevice,
      dh,
      n,
      pn,
      epoch,
      ...(prekey === undefined ? {} : { prekey }),
      ...(pqKey === undefined ? {} : { pqKey }),
      ...(pqCiphertext === undefined ? {} : { pqCiphertext })
    },
    headerBytes,
    body
  }
}

/** Which scheme a stored or received `{ciphertext, nonce, ephemeralKey?}` uses. */
export const schemeOf = (encrypted: { readonly ciphertext: string; readonly nonce?: string; readonly ephemeralKey?: string | undefined }): "x25519-aes-256-gcm/v1" | "secure/v1" | "unknown" => {
  if (encrypted.ephemeralKey !== undefined) return "x25519-aes-256-gcm/v1"
  // base64 of a first byte 0x01 starts with "A" followed by one of Q, R, S, T.
  return /^A[QRST]/.test(encrypted.ciphertext) ? "secure/v1" : "unknown"
}
