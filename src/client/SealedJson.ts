/**
 * Small JSON files of a client's state (aliases, pinned node keys) sealed with AES-256-GCM under a key
 * derived from the identity's secret, one key per purpose: whoever can write the file without the
 * passphrase cannot change what it says, and the purpose is the AAD so one file cannot stand in for another.
 */
import { gcm } from "@noble/ciphers/aes.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Either from "effect/Either"
import type { Identity } from "./L2psCrypto.ts"
import { fromBase64, secureRandom, toBase64 } from "./MlKemAes.ts"

const encoder = new TextEncoder()

export const keyFor = (identity: Identity, purpose: string): Uint8Array =>
  hkdf(sha256, identity.secretKey, encoder.encode(identity.publicKey), encoder.encode(`demos-im/${purpose}/v1`), 32)

interface Envelope {
  readonly sealed: string
  readonly data: string
}

export const sealJson = (key: Uint8Array, purpose: string, value: unknown): string => {
  const nonce = secureRandom(12)
  const ct = gcm(key, nonce, encoder.encode(purpose)).encrypt(encoder.encode(JSON.stringify(value)))
  const out = new Uint8Array(12 + ct.length)
  out.set(nonce, 0)
  out.set(ct, 12)
  return JSON.stringify({ sealed: purpose, data: toBase64(out) } satisfies Envelope, null, 2)
}

/** The sealed value; Left "unsealed" for JSON that is not an envelope (an older plain file), Left why otherwise. */
export const openJson = (key: Uint8Array, purpose: string, text: string): Either.Either<unknown, "unsealed" | "damaged"> => {
  let envelope: Partial<Envelope>
  try {
    envelope = JSON.parse(text) as Partial<Envelope>
  } catch {
    return Either.left("damaged")
  }
  if (typeof envelope !== "object" || envelope === null || typeof envelope.sealed !== "string") return Either.left("unsealed")
  if (envelope.sealed !== purpose || typeof envelope.data !== "string") return Either.left("damaged")
  try {
    const bytes = fromBase64(envelope.data)
    const plain = gcm(key, bytes.subarray(0, 12), encoder.encode(purpose)).decrypt(bytes.subarray(12))
    return Either.right(JSON.parse(new TextDecoder().decode(plain)) as unknown)
  } catch {
    return Either.left("damaged")
  }
}
