import { ed25519 } from "@noble/curves/ed25519.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as nodeCrypto from "node:crypto"
import { isStrictPublicKey } from "../domain/Keys.ts"

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
    if (publicKey.length !== 32 || signature.length !== 64 || !isStrictPublicKey(publicKey)) return false
    try {
      // RFC 8032's strict checks (canonical R and A, S < L), not ZIP-215's permissive ones.
      return ed25519.verify(signature, message, publicKey, { zip215: false })
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
  // BoringSSL and OpenSSL accept small-order keys (their cofactorless check then passes forged signatures
  // for some messages): a key is checked once, when imported, and never cached if refused.
  const keyOf = (publicKey: Uint8Array): nodeCrypto.KeyObject | undefined => {
    const id = Buffer.from(publicKey).toString("hex")
    let key = keys.get(id)
    if (key === undefined) {
      if (!isStrictPublicKey(publicKey)) return undefined
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
        const key = keyOf(publicKey)
        return key !== undefined && nodeCrypto.verify(null, message, key, signature)
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
