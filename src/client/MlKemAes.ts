/**
 * The SDK's `ml-kem-aes` encryption and identity derivation, byte for byte (PROTOCOL-REFERENCE.md
 * §3.3.5, @kynesyslabs/demosdk 2.9.1 `unifiedCrypto` / `Enigma`):
 * - seeds: HKDF-SHA256(ikm = master seed, salt = "master seed", info = "ml-kem-aes", 64 bytes) for
 *   ML-KEM-768, info "ml-dsa" and 32 bytes for ML-DSA-65;
 * - encryption to `pk`: `(ct, ss) = ML-KEM-768.Encapsulate(pk)`; AES-256-GCM with key `ss` (no KDF),
 *   a random 12-byte IV, no AAD; `encryptedData = IV ‖ ciphertext ‖ tag(16)`;
 * - wire: `{algorithm: "ml-kem-aes", serializedCipherText: b64(ct), serializedEncryptedData: b64(data)}`,
 *   standard base64 with padding.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { legacyChallengeMessage } from "../domain/LegacyChallenge.ts"

export interface KeyPair {
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

/** The two key pairs a legacy client needs: ML-KEM-768 to receive, ML-DSA-65 to prove its key. */
export interface LegacyKeys {
  readonly kem: KeyPair
  readonly dsa: KeyPair
}

/** What travels in a legacy `message` frame. */
export interface SerializedEncryptedObject {
  readonly algorithm: "ml-kem-aes"
  readonly serializedCipherText: string
  readonly serializedEncryptedData: string
}

/** What travels in a legacy `register` frame as `verification`. */
export interface SerializedSignedObject {
  readonly algorithm: "ml-dsa"
  readonly serializedSignedData: string
  readonly serializedPublicKey: string
  readonly serializedMessage: string
}

const encoder = new TextEncoder()
const IV_BYTES = 12
const TAG_BYTES = 16

/**
 * Bytes from the platform CSPRNG (`crypto.getRandomValues`). Key material, seeds and nonces must be
 * unpredictable, so they never come from Effect's `Random`, which is a seedable PRNG meant for tests.
 */
export const secureRandom = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65_536)))
  return out
}

/** Standard base64 with padding (what the SDK's `btoa` gives); no Node `Buffer`, so it runs in browsers too. */
export const toBase64 = (bytes: Uint8Array): string => {
  let binary = ""
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(binary)
}

/** Throws on text that is not base64. */
export const fromBase64 = (text: string): Uint8Array => {
  const binary = atob(text)
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

export const deriveSeed = (masterSeed: Uint8Array, algorithm: "ml-kem-aes" | "ml-dsa"): Uint8Array =>
  hkdf(sha256, masterSeed, encoder.encode("master seed"), encoder.encode(algorithm), algorithm === "ml-kem-aes" ? 64 : 32)

/** The SDK's `generateIdentity("ml-kem-aes", masterSeed)` and `generateIdentity("ml-dsa", masterSeed)`. */
export const legacyKeysFromSeed = (masterSeed: Uint8Array): LegacyKeys => {
  const kem = ml_kem768.keygen(deriveSeed(masterSeed, "ml-kem-aes"))
  const dsa = ml_dsa65.keygen(deriveSeed(masterSeed, "ml-dsa"))
  return {
    kem: { publicKey: kem.publicKey, secretKey: kem.secretKey },
    dsa: { publicKey: dsa.publicKey, secretKey: dsa.secretKey }
  }
}

/** A fresh 128-byte master seed, as the SDK makes one when none is given. */
export const newMasterSeed = (): Uint8Array => secureRandom(128)

/** Encrypts to an ML-KEM-768 public key: `{cipherText (1088 bytes), encryptedData (IV ‖ ct ‖ tag)}`. */
export const encrypt = (peerPublicKey: Uint8Array, plaintext: Uint8Array | string) => {
  const data = typeof plaintext === "string" ? encoder.encode(plaintext) : plaintext
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(peerPublicKey)
  const iv = secureRandom(IV_BYTES)
  const sealed = gcm(sharedSecret, iv).encrypt(data)
  const encryptedData = new Uint8Array(IV_BYTES + sealed.length)
  encryptedData.set(iv, 0)
  encryptedData.set(sealed, IV_BYTES)
  return { cipherText, encryptedData }
}

/** Decrypts with the own ML-KEM-768 secret key; throws when the data was not sealed for it. */
export const decrypt = (secretKey: Uint8Array, cipherText: Uint8Array, encryptedData: Uint8Array): Uint8Array => {
  if (encryptedData.length < IV_BYTES + TAG_BYTES) throw new Error("ml-kem-aes: encrypted data too short")
  const sharedSecret = ml_kem768.decapsulate(cipherText, secretKey)
  return gcm(sharedSecret, encryptedData.subarray(0, IV_BYTES)).decrypt(encryptedData.subarray(IV_BYTES))
}

export const serialize = (e: { readonly cipherText: Uint8Array; readonly encryptedData: Uint8Array }): SerializedEncryptedObject => ({
  algorithm: "ml-kem-aes",
  serializedCipherText: toBase64(e.cipherText),
  serializedEncryptedData: toBase64(e.encryptedData)
})

/** `encrypt` then `serialize`: what `MessagingPeer.sendMessage` puts in `message`. */
export const encryptSerialized = (peerPublicKey: Uint8Array, plaintext: Uint8Array | string): SerializedEncryptedObject =>
  serialize(encrypt(peerPublicKey, plaintext))

export const decryptSerialized = (secretKey: Uint8Array, o: { readonly algorithm?: unknown; readonly serializedCipherText: string; readonly serializedEncryptedData: string }): Uint8Array => {
  if (o.algorithm !== undefined && o.algorithm !== "ml-kem-aes") throw new Error(`unsupported algorithm ${String(o.algorithm)}`)
  return decrypt(secretKey, fromBase64(o.serializedCipherText), fromBase64(o.serializedEncryptedData))
}

/**
 * The registration proof of `MessagingPeer.registerAndWait`: ML-DSA-65 (FIPS 204, empty context,
 * hedged) over the raw ML-KEM public key bytes.
 */
export const registrationProof = (keys: LegacyKeys): SerializedSignedObject => ({
  algorithm: "ml-dsa",
  serializedSignedData: toBase64(ml_dsa65.sign(keys.kem.publicKey, keys.dsa.secretKey)),
  serializedPublicKey: toBase64(keys.dsa.publicKey),
  serializedMessage: toBase64(keys.kem.publicKey)
})

/**
 * The answer to a legacy server's `challenge` (extension): ML-DSA-65 over the nonce, the clientId, the
 * node's key and the ML-KEM key, good for one registration on that connection only.
 */
export const challengeProof = (keys: LegacyKeys, p: { readonly node: string; readonly clientId: string; readonly nonce: string }) => ({
  nonce: p.nonce,
  signature: toBase64(ml_dsa65.sign(
    legacyChallengeMessage({ nodeKeyHex: p.node, clientId: p.clientId, nonce: p.nonce, publicKey: keys.kem.publicKey }),
    keys.dsa.secretKey
  ))
})
