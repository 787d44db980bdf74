import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { NodeConfig } from "../node/NodeConfig.ts"

/** The node's ML-DSA-65 identity; it signs batch headers. */
export interface NodeKeyShape {
  readonly publicKeyHex: string
  readonly sign: (message: Uint8Array) => Uint8Array
}

export class NodeKey extends Context.Tag("im/NodeKey")<NodeKey, NodeKeyShape>() {}

export class NodeKeyError extends Data.TaggedError("NodeKeyError")<{ readonly message: string; readonly cause?: unknown }> {}

export const fromSeed = (seed: Uint8Array): NodeKeyShape => {
  const { publicKey, secretKey } = ml_dsa65.keygen(seed)
  return {
    publicKeyHex: Buffer.from(publicKey).toString("hex"),
    sign: (message) => ml_dsa65.sign(message, secretKey)
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
          mkdirSync(cfg.dataDir, { recursive: true })
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
