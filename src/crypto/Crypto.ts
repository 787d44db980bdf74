import { ed25519 } from "@noble/curves/ed25519.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as nodeCrypto from "node:crypto"

/** Primitive operations the node needs; synchronous, pure and total (bad input verifies false). */
export interface CryptoShape {
  readonly name: string
  readonly verifyEd25519: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean
  readonly sha256: (data: Uint8Array) => Uint8Array
}

export class Crypto extends Context.Tag("im/Crypto")<Crypto, CryptoShape>() {}

/** Portable implementation (pure JS). */
export const noble: CryptoShape = {
  name: "noble",
  verifyEd25519: (publicKey, message, signature) => {
    if (publicKey.length !== 32 || signature.length !== 64) return false
    try {
      return ed25519.verify(signature, message, publicKey)
    } catch {
      return false
    }
  },
  sha256: (data) => sha256(data)
}

const KEY_CACHE_MAX = 4096

/** Native implementation (BoringSSL in Bun, OpenSSL in Node): 10-30x faster than noble for ed25519. */
export const makeNative = (): CryptoShape => {
  // Importing a raw key costs more than the verification itself; cache recent keys.
  const keys = new Map<string, nodeCrypto.KeyObject>()
  const keyOf = (publicKey: Uint8Array): nodeCrypto.KeyObject => {
    const id = Buffer.from(publicKey).toString("hex")
    let key = keys.get(id)
    if (key === undefined) {
      key = nodeCrypto.createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey).toString("base64url") },
        format: "jwk"
      })
      if (keys.size >= KEY_CACHE_MAX) keys.delete(keys.keys().next().value!)
      keys.set(id, key)
    }
    return key
  }
  return {
    name: "native",
    verifyEd25519: (publicKey, message, signature) => {
      if (publicKey.length !== 32 || signature.length !== 64) return false
      try {
        return nodeCrypto.verify(null, message, keyOf(publicKey), signature)
      } catch {
        return false
      }
    },
    sha256: (data) => new Uint8Array(nodeCrypto.createHash("sha256").update(data).digest())
  }
}

export const layerNative: Layer.Layer<Crypto> = Layer.sync(Crypto, makeNative)
export const layerNoble: Layer.Layer<Crypto> = Layer.succeed(Crypto, noble)
export const layer = layerNative
