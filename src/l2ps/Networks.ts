import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeConfig } from "../node/NodeConfig.ts"
import * as Pipeline from "./Pipeline.ts"

/** The network of messages relayed by the legacy signaling server. */
export const LEGACY_UID = "legacy"

/** Runs one pipeline per served network (and the legacy one); each supervises its own stages. */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    for (const uid of new Set([...cfg.networks.keys(), LEGACY_UID])) yield* Pipeline.run(uid)
  })
)
