import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import * as nodeCrypto from "node:crypto"

/** ML-DSA-65 (FIPS 204, pure mode, empty context) sizes. */
export const PUBLIC_KEY_BYTES = 1952
export const SIGNATURE_BYTES = 3309

/** Verifies an ML-DSA-65 signature; total: malformed input verifies false. */
export type Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean

const wellFormed = (publicKey: Uint8Array, signature: Uint8Array) =>
  publicKey.length === PUBLIC_KEY_BYTES && signature.length === SIGNATURE_BYTES

/** Portable implementation (pure JS, ~2.5 ms per verification). */
export const noble: Verify = (publicKey, message, signature) => {
  if (!wellFormed(publicKey, signature)) return false
  try {
    return ml_dsa65.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

// SubjectPublicKeyInfo header for id-ml-dsa-65 (2.16.840.1.101.3.4.3.18) around a 1952-byte key.
const SPKI_PREFIX = Buffer.from("308207b2300b0609608648016503040312038207a100", "hex")

const KEY_CACHE_MAX = 1024

/** node:crypto (BoringSSL in Bun, ~30x faster than noble); undefined where the runtime lacks ML-DSA. */
export const makeNative = (): Verify | undefined => {
  const keys = new Map<string, nodeCrypto.KeyObject>()
  const keyOf = (publicKey: Uint8Array) => {
    const id = Buffer.from(publicKey).toString("base64")
    let key = keys.get(id)
    if (key === undefined) {
      key = nodeCrypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" })
      if (keys.size >= KEY_CACHE_MAX) keys.delete(keys.keys().next().value!)
      keys.set(id, key)
    }
    return key
  }
  const verify: Verify = (publicKey, message, signature) => {
    if (!wellFormed(publicKey, signature)) return false
    try {
      return nodeCrypto.verify(null, message, keyOf(publicKey), signature)
    } catch {
      return false
    }
  }
  return selfTest(verify) ? verify : undefined
}

/** WebCrypto (`importKey("raw-public")` + `verify`), the other native route in Bun; asynchronous. */
export const webCrypto = async (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> => {
  if (!wellFormed(publicKey, signature)) return false
  try {
    const algorithm = { name: "ML-DSA-65" } as unknown as Algorithm
    const key = await crypto.subtle.importKey("raw-public" as "raw", publicKey as BufferSource, algorithm, false, ["verify"])
    return await crypto.subtle.verify(algorithm, key, signature as BufferSource, message as BufferSource)
  } catch {
    return false
  }
}

// A fixed vector (made with noble) that a working native implementation must accept, and reject tampered.
const selfTest = (verify: Verify): boolean => {
  try {
    const { publicKey, secretKey } = ml_dsa65.keygen(new Uint8Array(32).fill(1))
    const message = new TextEncoder().encode("ml-dsa self test")
    const signature = ml_dsa65.sign(message, secretKey, { extraEntropy: false })
    const tampered = signature.slice()
    tampered[0]! ^= 1
    return verify(publicKey, message, signature) && !verify(publicKey, message, tampered)
  } catch {
    return false
  }
}

let best: { readonly name: "native" | "noble"; readonly verify: Verify } | undefined

/** The fastest implementation this runtime has, chosen once per thread. */
export const preferred = () => {
  if (best === undefined) {
    const native = makeNative()
    best = native === undefined ? { name: "noble", verify: noble } : { name: "native", verify: native }
  }
  return best
}
