import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeConfig } from "../config/NodeConfig.ts"
import { type Listening, Transport } from "../transport/Transport.ts"
import * as LegacyPeers from "./LegacyPeers.ts"
import { LegacyRelay } from "./LegacyRelay.ts"
import * as LegacyRelayLayer from "./LegacyRelay.ts"
import * as ServerQuestions from "./ServerQuestions.ts"

/** The legacy signaling server (default port 3005), listening while its layer is alive. */
export class LegacyServer extends Context.Tag("im/LegacyServer")<LegacyServer, Listening>() {}

const listen = Layer.scoped(
  LegacyServer,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const transport = yield* Transport
    const relay = yield* LegacyRelay
    return yield* transport.serve({
      name: "legacy",
      host: cfg.host,
      port: cfg.legacyPort,
      maxPayloadBytes: cfg.maxPayloadBytes,
      maxConnections: cfg.maxConnections,
      idleTimeoutSeconds: cfg.idleTimeoutSeconds,
      handler: relay,
      trustedProxies: cfg.trustedProxies
    })
  })
)

/** The server with its relay, its registry and the `ServerQuestions` API for the node's own code. */
export const layer = listen.pipe(
  Layer.provideMerge(LegacyRelayLayer.layer),
  Layer.provideMerge(ServerQuestions.layer),
  Layer.provideMerge(LegacyPeers.layer)
)
