import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../config/NodeConfig.ts"
import { Storage } from "../storage/Storage.ts"
import * as Metrics from "../internal/Metrics.ts"
import * as Ownership from "../internal/Ownership.ts"
import { supervise } from "../internal/supervise.ts"

const MAX_SWEEP_INTERVAL = 3_600_000

/**
 * Queued messages past OFFLINE_TTL expire (out of history and of the offline limits) and are deleted, on
 * the Clock: a flagged row would still take its space for good.
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const storage = yield* Storage
    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const { deleted, expired } = yield* storage.expirePending(now - cfg.offlineTtlMillis)
      if (expired > 0) {
        yield* Metric.incrementBy(Metrics.offlineExpired, expired)
        yield* Effect.logInfo(`expired ${expired} queued messages older than ${cfg.offlineTtlMillis / 1000} s`)
      }
      if (deleted > 0) yield* Effect.logInfo(`deleted ${deleted} expired or failed messages`)
    }).pipe(
      // catchAllCause: a COMMIT lost with the connection is a defect in @effect/sql; the sweep must go on
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logWarning("offline expiry sweep failed", Cause.squash(cause))
      )
    )
    const every = Math.max(1000, Math.min(MAX_SWEEP_INTERVAL, Math.floor(cfg.offlineTtlMillis / 10)))
    // One node of those sharing the database sweeps; the others would only repeat its deletes.
    const ownership = yield* Ownership.current
    yield* ownership.runOwned("sweep/offline-expiry", () =>
      supervise("offline-expiry", Effect.repeat(sweep, Schedule.spaced(every))))
  })
)
