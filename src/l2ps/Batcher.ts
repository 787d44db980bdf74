import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { NodeConfigShape } from "../node/NodeConfig.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { Mempool } from "./Mempool.ts"
import type { MempoolEntry, PipelineStoreShape } from "./PipelineStore.ts"

/** Messages for one batch, handed to the prover; `saved` completes once they are claimed in storage. */
export interface Draft {
  readonly entries: ReadonlyArray<MempoolEntry>
  readonly saved: Deferred.Deferred<void, StorageError>
}

/**
 * Closes a batch at `maxBatchSize` pending messages, or `batchIntervalMillis` after it first saw one.
 * It waits for each draft to be claimed before reading again, so no message is drafted twice.
 */
export const run = (
  uid: string,
  cfg: NodeConfigShape,
  store: PipelineStoreShape,
  mempool: typeof Mempool.Service,
  drafts: Queue.Enqueue<Draft>
) =>
  Effect.gen(function*() {
    const max = cfg.maxBatchSize
    const waitFor = (ms: number) => Effect.race(mempool.woken(uid), Effect.sleep(Math.max(0, ms)))
    let firstSeen: number | undefined
    while (true) {
      const pending = yield* store.countPending(uid, undefined, max)
      const now = yield* Clock.currentTimeMillis
      if (pending === 0) {
        firstSeen = undefined
        // The periodic sweep also finds rows written by anyone who did not wake us.
        yield* waitFor(cfg.batchIntervalMillis)
        continue
      }
      firstSeen ??= now
      if (pending < max && now - firstSeen < cfg.batchIntervalMillis) {
        yield* waitFor(firstSeen + cfg.batchIntervalMillis - now)
        continue
      }
      const entries = yield* store.takePending(uid, undefined, max)
      firstSeen = undefined
      if (entries.length === 0) continue
      const saved = yield* Deferred.make<void, StorageError>()
      yield* Queue.offer(drafts, { entries, saved })
      yield* Deferred.await(saved)
    }
  })
