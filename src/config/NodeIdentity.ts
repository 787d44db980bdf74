import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { NODE_ID_PATTERN, NodeConfig } from "./NodeConfig.ts"

export class NodeIdentityError extends Data.TaggedError("NodeIdentityError")<{ readonly message: string; readonly cause?: unknown }> {}

/** This node's name among the nodes sharing a database: in lock and heartbeat rows, bus subjects and logs. */
export class NodeIdentity extends Context.Tag("im/NodeIdentity")<NodeIdentity, { readonly id: string }>() {}

const FILE = "node-id"

/**
 * `NODE_ID` when set; otherwise the id kept in `DATA_DIR/node-id`, made on first start. A node that
 * restarts keeps its id, so the others see the same member come back rather than a stranger.
 */
export const layer: Layer.Layer<NodeIdentity, NodeIdentityError, NodeConfig> = Layer.effect(
  NodeIdentity,
  Effect.flatMap(NodeConfig, (cfg) =>
    Option.match(cfg.nodeId, {
      onSome: (id) => Effect.succeed({ id }),
      onNone: () =>
        Effect.try({
          try: () => {
            const file = join(cfg.dataDir, FILE)
            if (!existsSync(file)) {
              mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 })
              // The platform CSPRNG, not the seedable Random: two nodes started under one test seed must differ.
              const bytes = crypto.getRandomValues(new Uint8Array(6))
              writeFileSync(file, `node-${Buffer.from(bytes).toString("hex")}\n`, { mode: 0o600, flag: "wx" })
            }
            const id = readFileSync(file, "utf8").trim()
            if (!NODE_ID_PATTERN.test(id)) throw new Error(`${file}: a node id is 1-64 characters of [A-Za-z0-9_-]`)
            return { id }
          },
          catch: (cause) => new NodeIdentityError({ message: `cannot load the node id: ${String(cause)}`, cause })
        })
    }))
)

export const layerTest = (id: string): Layer.Layer<NodeIdentity> => Layer.succeed(NodeIdentity, { id })
