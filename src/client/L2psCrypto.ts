/**
 * End-to-end encryption for the L2PS server, whose only "public key" for a peer is its ed25519
 * registration key (`request_public_key` answers that key). The server relays and stores
 * `{ciphertext, nonce, ephemeralKey}` and never decrypts.
 *
 * Scheme `x25519-aes-256-gcm/v1` (ed25519 keys mapped to X25519, RFC 7748 birational map):
 * - `R` = X25519 form of the recipient's ed25519 public key, `S`/`s` = the sender's, `e`/`E` = a fresh
 *   ephemeral X25519 pair (platform CSPRNG);
 * - `ikm = X25519(e, R) ‖ X25519(s, R)`: the ephemeral part gives forward secrecy against a later leak
 *   of the sender's key, the static part authenticates the sender (only the holders of `s` or of `R`'s
 *   secret can derive the key, so a relay that rewrites `from` produces a message that fails to open);
 * - `key = HKDF-SHA256(ikm, salt = E ‖ S ‖ R, info = "demos-im/l2ps/x25519-aes-256-gcm/v1", 32)`;
 * - AES-256-GCM with a random 12-byte nonce, AAD = the UTF-8 of `"<sender hex>><recipient hex>"`
 *   (`#bound/v1` appended for a message bound to its hash, see `sealBound`);
 * - wire: `ciphertext` = base64(ct ‖ tag), `nonce` = base64(nonce), `ephemeralKey` = hex(E).
 * The recipient opens with its own ed25519 secret key and the `from` key of the `message` frame.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import { fromBase64, secureRandom, toBase64 } from "./MlKemAes.ts"
import type { SerializedEncryptedMessage } from "./Wire.ts"

export const SCHEME = "x25519-aes-256-gcm/v1"
const BOUND = "bound/v1"
const INFO = new TextEncoder().encode(`demos-im/l2ps/${SCHEME}`)
const encoder = new TextEncoder()
const KEY_HEX = /^[0-9a-fA-F]{64}$/

/** An L2PS identity: an ed25519 key pair. */
export interface Identity {
  /** 64 lower-case hex characters: the key peers address messages to. */
  readonly publicKey: string
  readonly secretKey: Uint8Array
}

/** A new identity from the platform CSPRNG (never from Effect's seedable `Random`). */
export const generateIdentity = (): Identity => identityFromSecret(secureRandom(32))

export const identityFromSecret = (secretKey: Uint8Array): Identity => ({
  publicKey: bytesToHex(ed25519.getPublicKey(secretKey)),
  secretKey
})

/** The `signFn` of `L2PSMessagingPeer`: hex ed25519 signature of the UTF-8 bytes of `message`. */
export const signFnOf = (identity: Identity) => (message: string): string =>
  bytesToHex(ed25519.sign(encoder.encode(message), identity.secretKey))

const keyBytes = (hex: string, what: string): Uint8Array => {
  if (!KEY_HEX.test(hex)) throw new Error(`${what} must be 64 hex characters (an ed25519 public key)`)
  return hexToBytes(hex.toLowerCase())
}

const derive = (ikm: Uint8Array, E: Uint8Array, S: Uint8Array, R: Uint8Array) => {
  const salt = new Uint8Array(96)
  salt.set(E, 0)
  salt.set(S, 32)
  salt.set(R, 64)
  return hkdf(sha256, ikm, salt, INFO, 32)
}

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

const aad = (from: string, to: string) => encoder.encode(`${from.toLowerCase()}>${to.toLowerCase()}`)
/** Another AAD for bound messages, so a bound message never opens as an unbound one (and back). */
const boundAad = (from: string, to: string) => encoder.encode(`${from.toLowerCase()}>${to.toLowerCase()}#${BOUND}`)

const sealWith = (sender: Identity, recipient: string, data: Uint8Array, ad: Uint8Array): SerializedEncryptedMessage => {
  const R = ed25519.utils.toMontgomery(keyBytes(recipient, "recipient"))
  const S = ed25519.utils.toMontgomery(keyBytes(sender.publicKey, "sender"))
  const s = ed25519.utils.toMontgomerySecret(sender.secretKey)
  const e = secureRandom(32)
  const E = x25519.getPublicKey(e)
  const key = derive(concat(x25519.getSharedSecret(e, R), x25519.getSharedSecret(s, R)), E, S, R)
  const nonce = secureRandom(12)
  const ciphertext = gcm(key, nonce, ad).encrypt(data)
  return { ciphertext: toBase64(ciphertext), nonce: toBase64(nonce), ephemeralKey: bytesToHex(E) }
}

/** Encrypts `plaintext` from `sender` to the ed25519 key `recipient` (hex), unbound (the SDK-era form). */
export const sealFor = (sender: Identity, recipient: string, plaintext: Uint8Array | string): SerializedEncryptedMessage =>
  sealWith(sender, recipient, typeof plaintext === "string" ? encoder.encode(plaintext) : plaintext, aad(sender.publicKey, recipient))

/** The GCM key of a message `from` to `recipient`, or throws when it is not one of this scheme. */
const keyOf = (recipient: Identity, from: string, encrypted: SerializedEncryptedMessage) => {
  if (typeof encrypted.ephemeralKey !== "string" || !KEY_HEX.test(encrypted.ephemeralKey)) {
    throw new Error(`not a ${SCHEME} message (no ephemeral key)`)
  }
  const E = hexToBytes(encrypted.ephemeralKey.toLowerCase())
  const S = ed25519.utils.toMontgomery(keyBytes(from, "sender"))
  const R = ed25519.utils.toMontgomery(keyBytes(recipient.publicKey, "recipient"))
  const r = ed25519.utils.toMontgomerySecret(recipient.secretKey)
  const nonce = fromBase64(encrypted.nonce)
  if (nonce.length !== 12) throw new Error("nonce must be 12 bytes")
  return { key: derive(concat(x25519.getSharedSecret(r, E), x25519.getSharedSecret(r, S)), E, S, R), nonce }
}

const tryOpen = (key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined => {
  try {
    return gcm(key, nonce, ad).decrypt(ciphertext)
  } catch {
    return undefined
  }
}

type Raw = { readonly bound: false; readonly data: Uint8Array } | { readonly bound: true; readonly sentAt: number; readonly data: Uint8Array }

const openRaw = (recipient: Identity, from: string, encrypted: SerializedEncryptedMessage): Raw => {
  const { key, nonce } = keyOf(recipient, from, encrypted)
  const ct = fromBase64(encrypted.ciphertext)
  const bound = tryOpen(key, nonce, boundAad(from, recipient.publicKey), ct)
  if (bound !== undefined && bound.length >= 8) {
    return { bound: true, sentAt: Number(new DataView(bound.buffer, bound.byteOffset, 8).getBigUint64(0)), data: bound.subarray(8) }
  }
  const plain = tryOpen(key, nonce, aad(from, recipient.publicKey), ct)
  if (plain === undefined) throw new Error("the message does not open (wrong sender, recipient or a damaged ciphertext)")
  return { bound: false, data: plain }
}

/** Decrypts a message `from` (hex ed25519 key) to `recipient`, bound or not; throws when it does not open. */
export const openFrom = (recipient: Identity, from: string, encrypted: SerializedEncryptedMessage): Uint8Array =>
  openRaw(recipient, from, encrypted).data

const utf8 = (data: Uint8Array) => new TextDecoder("utf-8", { fatal: true }).decode(data)

export const openTextFrom = (recipient: Identity, from: string, encrypted: SerializedEncryptedMessage): string =>
  utf8(openFrom(recipient, from, encrypted))

/**
 * A message bound to its hash (our client's form, SECURITY.md 18): the sender's timestamp is sealed in
 * front of the text (8 bytes, big-endian ms) under its own AAD, and the message hash is
 * `messageHashOf(from, to, encrypted, sentAt)`. The ciphertext then fixes its hash: sent again as
 * another message (a new hash) it no longer matches, and sent with the same hash it is a duplicate.
 */
export const sealBound = (sender: Identity, recipient: string, text: string, sentAt: number) => {
  const body = encoder.encode(text)
  const data = new Uint8Array(8 + body.length)
  new DataView(data.buffer).setBigUint64(0, BigInt(sentAt))
  data.set(body, 8)
  const encrypted = sealWith(sender, recipient, data, boundAad(sender.publicKey, recipient))
  return { encrypted, messageHash: messageHashOf(sender.publicKey.toLowerCase(), recipient.toLowerCase(), encrypted, sentAt) }
}

export type Opened =
  /** Bound to this very message hash: `sentAt` is the sender's clock when it sealed it. */
  | { readonly _tag: "Bound"; readonly text: string; readonly sentAt: number }
  /** From a client that does not bind (the SDK's, or `sealFor`): it could be an old ciphertext sent again. */
  | { readonly _tag: "Unbound"; readonly text: string }
  /** Bound to another hash: an earlier message of the sender's, sent again as a new one. */
  | { readonly _tag: "Replayed"; readonly sentAt: number; readonly boundHash: string }

/** Opens a received message and checks its binding to `messageHash`; throws when it does not open. */
export const openMessage = (recipient: Identity, from: string, encrypted: SerializedEncryptedMessage, messageHash: string): Opened => {
  const raw = openRaw(recipient, from, encrypted)
  if (!raw.bound) return { _tag: "Unbound", text: utf8(raw.data) }
  // The hash is computed over the fields in the order the sender's `sealBound` wrote them.
  const canonical = { ciphertext: encrypted.ciphertext, nonce: encrypted.nonce, ephemeralKey: encrypted.ephemeralKey } as SerializedEncryptedMessage
  const boundHash = messageHashOf(from.toLowerCase(), recipient.publicKey.toLowerCase(), canonical, raw.sentAt)
  if (boundHash !== messageHash.toLowerCase()) return { _tag: "Replayed", sentAt: raw.sentAt, boundHash }
  return { _tag: "Bound", text: utf8(raw.data), sentAt: raw.sentAt }
}

/**
 * A message hash as the reference node's helper computes it:
 * `sha256hex(JSON.stringify({from, to, content, timestamp}))`. The random nonce makes it unique.
 */
export const messageHashOf = (from: string, to: string, content: SerializedEncryptedMessage, timestamp: number): string =>
  bytesToHex(sha256(encoder.encode(JSON.stringify({ from, to, content, timestamp }))))
