/**
 * Where secure sessions get key material: the platform CSPRNG (`crypto.getRandomValues`), never
 * Effect's seedable `Random`. Hooks exist for the security tests only, all unset by default: one
 * sees (and may substitute) every X25519 secret generated, to model an attacker who can break X25519;
 * two see every message key and every root or chain key stepped past, to check that a stored state
 * holds none of the keys already used.
 */
import { x25519 } from "@noble/curves/ed25519.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"

export const randomBytes = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  crypto.getRandomValues(out)
  return out
}

export interface KeyPair {
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

export interface KeyHooks {
  /** Receives each fresh X25519 secret and returns the one to use. */
  x25519Secret?: ((fresh: Uint8Array) => Uint8Array) | undefined
  /** Receives each message key (AES key ‖ nonce) as it is derived, and the chain's seed it came from. */
  messageKey?: ((key: Uint8Array, seed: Uint8Array) => void) | undefined
  /** Receives each root or chain key as it is stepped past (and so no longer needed). */
  spentKey?: ((key: Uint8Array) => void) | undefined
}

export const hooks: KeyHooks = {}

export const x25519KeyPair = (): KeyPair => {
  const fresh = randomBytes(32)
  const secretKey = hooks.x25519Secret === undefined ? fresh : hooks.x25519Secret(fresh)
  return { publicKey: x25519.getPublicKey(secretKey), secretKey }
}

/** ML-KEM-768: 1,184-byte encapsulation key, 2,400-byte decapsulation key. */
export const mlKemKeyPair = (): KeyPair => {
  const seed = randomBytes(64)
  const { publicKey, secretKey } = ml_kem768.keygen(seed)
  seed.fill(0)
  // Own copies, so that erasing one key never reaches bytes another array shares.
  return { publicKey: publicKey.slice(), secretKey: secretKey.slice() }
}

/** Encapsulation with 32 bytes of CSPRNG randomness: a 1,088-byte ciphertext and a 32-byte secret. */
export const mlKemEncapsulate = (publicKey: Uint8Array): { readonly cipherText: Uint8Array; readonly sharedSecret: Uint8Array } => {
  const m = randomBytes(32)
  const out = ml_kem768.encapsulate(publicKey, m)
  m.fill(0)
  return out
}

export const mlKemDecapsulate = (cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array => ml_kem768.decapsulate(cipherText, secretKey)

export const ML_KEM_PUBLIC_BYTES = 1184
export const ML_KEM_CIPHERTEXT_BYTES = 1088
