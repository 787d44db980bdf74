import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Relay } from "./Relay.ts"
import { type Listening, Transport } from "../transport/Transport.ts"
import { NodeConfig } from "../config/NodeConfig.ts"

/** The L2PS messaging server, listening while its layer is alive. */
export class L2psServer extends Context.Tag("im/L2psServer")<L2psServer, Listening>() {}

export const layer = Layer.scoped(
  L2psServer,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const transport = yield* Transport
    const relay = yield* Relay
    return yield* transport.serve({
      name: "l2ps",
      host: cfg.host,
      port: cfg.l2psPort,
      maxPayloadBytes: cfg.maxPayloadBytes,
      maxConnections: cfg.maxConnections,
      idleTimeoutSeconds: cfg.idleTimeoutSeconds,
      compression: cfg.wsCompression,
      handler: relay,
      trustedProxies: cfg.trustedProxies
    })
  })
)
