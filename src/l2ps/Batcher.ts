import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { NodeConfigShape } from "../config/NodeConfig.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { BatchWakeups } from "./BatchWakeups.ts"
import type { MempoolEntry, PipelineStoreShape } from "./PipelineStore.ts"

/** Messages for one batch, handed to the prover; `saved` completes once they are claimed in storage. */
export interface Draft {
  readonly entries: ReadonlyArray<MempoolEntry>
  readonly saved: Deferred.Deferred<void, StorageError>
}

/**
 * Closes a batch at `maxBatchSize` pending messages, or `batchIntervalMillis` after it first saw one.
 * It waits for each draft to be claimed before reading again, so no message is drafted twice.
 * Pending messages are counted from the commits' wake-ups, not in storage after every commit (a count
 * there visits every row batched since the last vacuum); storage is counted at start, and looked at when
 * idle, for rows written by anyone who did not wake it.
 */
export const run = (
  uid: string,
  cfg: NodeConfigShape,
  store: PipelineStoreShape,
  wakeups: typeof BatchWakeups.Service,
  drafts: Queue.Enqueue<Draft>,
  /** Shared by the node's batchers (see `Networks`). */
  reads: Effect.Semaphore
) =>
  Effect.gen(function*() {
    const max = cfg.maxBatchSize
    /** Messages committed meanwhile, or undefined when `ms` passed first. */
    const waitFor = (ms: number) =>
      Effect.raceFirst(Effect.map(wakeups.woken(uid), (n): number | undefined => n), Effect.as(Effect.sleep(Math.max(0, ms)), undefined))
    const count = reads.withPermits(1)(store.countPending(uid, undefined, max))
    let pending = yield* count
    let firstSeen: number | undefined
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (pending === 0) {
        firstSeen = undefined
        const woken = yield* waitFor(cfg.batchIntervalMillis)
        pending = woken ?? ((yield* store.anyPending(uid)) ? yield* count : 0)
        continue
      }
      firstSeen ??= now
      if (pending < max && now - firstSeen < cfg.batchIntervalMillis) {
        pending += (yield* waitFor(firstSeen + cfg.batchIntervalMillis - now)) ?? 0
        continue
      }
      const entries = yield* reads.withPermits(1)(store.takePending(uid, undefined, max)).pipe(
        Effect.withSpan("Batcher.batch", { attributes: { l2psUid: uid, pending } })
      )
      firstSeen = undefined
      if (entries.length === 0) {
        pending = 0
        continue
      }
      const saved = yield* Deferred.make<void, StorageError>()
      yield* Queue.offer(drafts, { entries, saved })
      yield* Deferred.await(saved)
      // A short batch took everything; a full one may have left more than was counted (a backlog found
      // at start or by the sweep is counted up to one batch), so storage is counted again, once the
      // batch is claimed.
      pending = entries.length < max ? 0 : Math.max(0, pending - entries.length) || (yield* count)
    }
  })
