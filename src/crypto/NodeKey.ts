import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as nodeCrypto from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { NodeConfig } from "../config/NodeConfig.ts"

/** The node's ML-DSA-65 identity; it signs batch headers. */
export interface NodeKeyShape {
  readonly publicKeyHex: string
  readonly sign: (message: Uint8Array) => Uint8Array
}

export class NodeKey extends Context.Tag("im/NodeKey")<NodeKey, NodeKeyShape>() {}

export class NodeKeyError extends Data.TaggedError("NodeKeyError")<{ readonly message: string; readonly cause?: unknown }> {}

// PKCS#8 for id-ml-dsa-65 (2.16.840.1.101.3.4.3.18) holding the 32-byte seed (the `seed [0]` choice).
const PKCS8_SEED_PREFIX = Buffer.from("3034020100300b060960864801650304031204228020", "hex")

/**
 * node:crypto's ML-DSA (BoringSSL in Bun: ~0.5 ms per signature against ~11-27 ms for noble, and a batch
 * is signed every 500 messages), when the runtime has it and it derives the same key from the seed.
 */
const nativeSigner = (seed: Uint8Array, publicKey: Uint8Array): ((message: Uint8Array) => Uint8Array) | undefined => {
  try {
    const key = nodeCrypto.createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, seed]), format: "der", type: "pkcs8" })
    const spki = nodeCrypto.createPublicKey(key).export({ format: "der", type: "spki" })
    if (!Buffer.from(spki).subarray(-publicKey.length).equals(Buffer.from(publicKey))) return undefined
    const sign = (message: Uint8Array) => new Uint8Array(nodeCrypto.sign(null, message, key))
    const probe = new TextEncoder().encode("node key self test")
    return ml_dsa65.verify(sign(probe), probe, publicKey) ? sign : undefined
  } catch {
    return undefined
  }
}

export const fromSeed = (seed: Uint8Array): NodeKeyShape => {
  const { publicKey, secretKey } = ml_dsa65.keygen(seed)
  return {
    publicKeyHex: Buffer.from(publicKey).toString("hex"),
    sign: nativeSigner(seed, publicKey) ?? ((message) => ml_dsa65.sign(message, secretKey))
  }
}

export const verify = (publicKeyHex: string, message: Uint8Array, signatureHex: string): boolean => {
  try {
    return ml_dsa65.verify(Buffer.from(signatureHex, "hex"), message, Buffer.from(publicKeyHex, "hex"))
  } catch {
    return false
  }
}

export const layerFromSeed = (seed: Uint8Array): Layer.Layer<NodeKey> => Layer.sync(NodeKey, () => fromSeed(seed))

const FILE = "node-key.json"

/** Loads the key seed from DATA_DIR, creating it on first start (readable by the node's user only). */
export const layerFromDataDir: Layer.Layer<NodeKey, NodeKeyError, NodeConfig> = Layer.effect(
  NodeKey,
  Effect.flatMap(NodeConfig, (cfg) =>
    Effect.try({
      try: () => {
        const file = join(cfg.dataDir, FILE)
        if (!existsSync(file)) {
          mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 })
          // Key material needs the platform's CSPRNG, not the seedable Effect Random.
          const seed = crypto.getRandomValues(new Uint8Array(32))
          writeFileSync(file, JSON.stringify({ algorithm: "ml-dsa-65", seed: Buffer.from(seed).toString("hex") }), {
            mode: 0o600,
            flag: "wx"
          })
        }
        const { seed } = JSON.parse(readFileSync(file, "utf8")) as { seed: string }
        if (!/^[0-9a-f]{64}$/.test(seed)) throw new Error(`${file}: seed must be 64 hex characters`)
        return fromSeed(Buffer.from(seed, "hex"))
      },
      catch: (cause) => new NodeKeyError({ message: `cannot load the node key: ${String(cause)}`, cause })
    }))
)
