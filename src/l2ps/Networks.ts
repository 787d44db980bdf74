import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeConfig } from "../config/NodeConfig.ts"
import { LEGACY_UID } from "../domain/LegacyUid.ts"
import * as Ownership from "../internal/Ownership.ts"
import * as Pipeline from "./Pipeline.ts"

/**
 * Runs one pipeline per served network (and the legacy one); each supervises its own stages, on the
 * one node of those sharing the database that owns it (`pipeline/<uid>`, see `Ownership`). Their
 * batchers read the mempool one at a time: a node serving a hundred networks would otherwise take a
 * hundred pool connections at once with their periodic sweeps, and every request waits behind them.
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const mempoolReads = yield* Effect.makeSemaphore(1)
    const ownership = yield* Ownership.current
    for (const uid of new Set([...cfg.networks.keys(), LEGACY_UID])) {
      yield* ownership.runOwned(`pipeline/${uid}`, (fence) => Pipeline.run(uid, mempoolReads, fence))
    }
  })
)
