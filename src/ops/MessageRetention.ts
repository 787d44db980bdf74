import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { type PruneCursor, PipelineStore } from "../l2ps/PipelineStore.ts"
import { supervise } from "../internal/supervise.ts"

/** Messages deleted per statement: each commits on its own, so no lock outlives a few milliseconds. */
export const PRUNE_CHUNK = 500
const MAX_SWEEP_INTERVAL = 3_600_000

/** A tenth of the retention, between a second and an hour. */
export const sweepInterval = (retentionMillis: number): number =>
  Math.max(1000, Math.min(MAX_SWEEP_INTERVAL, Math.floor(retentionMillis / 10)))

/**
 * MESSAGE_RETENTION: confirmed messages older than it are removed, batch after batch in small chunks,
 * on the Clock; their batch headers stay (the chain of roots and the L1 anchors), their inclusion
 * proofs go. A message still waiting for its recipient is left to OFFLINE_TTL. Unset: nothing runs.
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const retention = cfg.messageRetentionMillis
    if (retention === null) return
    const store = yield* PipelineStore
    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let cursor: PruneCursor | undefined
      let messages = 0
      let batches = 0
      do {
        const step = yield* store.prune(now - retention, cursor, PRUNE_CHUNK)
        messages += step.messages
        batches += step.batches
        cursor = step.next
        // Between chunks the relay's own statements get their turn.
        yield* Effect.yieldNow()
      } while (cursor !== undefined)
      if (messages > 0 || batches > 0) {
        yield* Effect.logInfo(`retention: removed ${messages} confirmed messages older than ${retention / 1000} s; ${batches} batches keep only their headers`)
      }
    }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logWarning("message retention sweep failed", Cause.squash(cause))
      )
    )
    yield* supervise("message-retention", Effect.repeat(sweep, Schedule.spaced(sweepInterval(retention))))
  })
)
