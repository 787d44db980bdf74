import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import { Mempool } from "../l2ps/Mempool.ts"
import { NodeConfig } from "../node/NodeConfig.ts"
import * as Metrics from "../ops/Metrics.ts"
import { type CommitRequest, type CommitResult, Storage, StorageError } from "../storage/Storage.ts"

interface Pending {
  readonly request: CommitRequest
  readonly done: Deferred.Deferred<CommitResult, StorageError>
}

/** Group commit: one writer fiber stores whatever sends are waiting, in one transaction. */
export class Committer extends Context.Tag("im/Committer")<Committer, {
  /** Resolves once the message is durable (or refused). */
  readonly commit: (request: CommitRequest) => Effect.Effect<CommitResult, StorageError>
  /**
   * Queues the message for the writer and returns at once with the wait for its outcome, so a session
   * can read its next frame while this one commits (requests are stored in submission order).
   */
  readonly submit: (request: CommitRequest) => Effect.Effect<Effect.Effect<CommitResult, StorageError>>
}>() {}

/** Resumes after the event loop has run its pending I/O callbacks (not a timer: no time passes). */
const ioTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

export const layer: Layer.Layer<Committer, never, Storage | NodeConfig | Mempool> = Layer.scoped(
  Committer,
  Effect.gen(function*() {
    const storage = yield* Storage
    const cfg = yield* NodeConfig
    const mempool = yield* Mempool
    const queue = yield* Queue.bounded<Pending>(cfg.commitBatchMax * 8)
    const wakeBatchers = (batch: ReadonlyArray<Pending>, results: ReadonlyArray<CommitResult>) => {
      const uids = new Set<string>()
      batch.forEach((p, i) => results[i]?._tag === "Stored" && uids.add(p.request.message.l2psUid))
      return Effect.forEach(uids, mempool.wake, { discard: true })
    }

    const store = (batch: ReadonlyArray<Pending>) =>
      storage.commit(batch.map((p) => p.request)).pipe(
        Metric.trackDuration(Metrics.commitLatency),
        // A defect fails the waiting sends too: @effect/sql dies when COMMIT fails (e.g. the database
        // went away mid-transaction), and the writer must outlive it or every later send hangs.
        Effect.matchCauseEffect({
          onFailure: (cause) => {
            const e = Option.getOrElse(
              Cause.failureOption(cause),
              () => new StorageError({ operation: "commit", cause: Cause.squash(cause) })
            )
            return Effect.forEach(batch, (p) => Deferred.fail(p.done, e), { discard: true })
          },
          onSuccess: (results) =>
            Effect.zipRight(
              wakeBatchers(batch, results),
              Effect.forEach(batch, (p, i) => Deferred.succeed(p.done, results[i]!), { discard: true })
            )
        }),
        // A batch that started is finished even when the node is stopping.
        Effect.uninterruptible
      )

    const nextBatch = Effect.gen(function*() {
      const first = yield* Queue.take(queue)
      // One event-loop turn before the batch closes: frames already received join it. Without it,
      // an embedded database that blocks the loop while it commits (PGlite) gets one message per
      // commit, since the writer wakes for the first send before the loop reads the others.
      if ((yield* Queue.size(queue)) < cfg.commitBatchMax - 1) yield* ioTurn
      return [first, ...(yield* Queue.takeUpTo(queue, cfg.commitBatchMax - 1))]
    })
    yield* nextBatch.pipe(
      Effect.flatMap(store),
      Effect.forever,
      Effect.forkScoped
    )
    // On shutdown, whatever was submitted before the writer stopped is still committed.
    yield* Effect.addFinalizer(() =>
      Queue.takeAll(queue).pipe(
        Effect.flatMap((rest) => (rest.length === 0 ? Effect.void : store(Chunk.toReadonlyArray(rest)))),
        Effect.zipRight(Queue.shutdown(queue))
      )
    )

    const submit = (request: CommitRequest) =>
      Effect.flatMap(Deferred.make<CommitResult, StorageError>(), (done) =>
        Queue.offer(queue, { request, done }).pipe(Effect.as(Deferred.await(done))))
    return { submit, commit: (request) => Effect.flatten(submit(request)) }
  })
)
