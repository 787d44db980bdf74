import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { Mempool } from "../l2ps/Mempool.ts"
import { NodeConfig } from "../node/NodeConfig.ts"
import * as Metrics from "../ops/Metrics.ts"
import { CommitQueue } from "./CommitQueue.ts"
import { type CommitRequest, type CommitResult, Storage, StorageError } from "../storage/Storage.ts"

/**
 * Runs on the writer's fiber, in submission order, once the request's transaction ended (or failed), with
 * the time then. Plain code, so that a batch of 500 completes without a fiber wake-up per message; an
 * effect it returns (rare paths: storage follow-ups, error logs) runs on its own fiber.
 */
export type Completion = (
  outcome: Exit.Exit<CommitResult, StorageError>,
  now: number
) => Effect.Effect<void> | undefined

interface Pending {
  readonly request: CommitRequest
  readonly done: Completion
}

/** Group commit: one writer fiber stores whatever sends are waiting, in one transaction. */
export class Committer extends Context.Tag("im/Committer")<Committer, {
  /** Resolves once the message is durable (or refused). */
  readonly commit: (request: CommitRequest) => Effect.Effect<CommitResult, StorageError>
  /**
   * Queues the message for the writer (waiting only for room) and returns, so a session can read its
   * next frame while this one commits; `done` runs once it is stored or refused, in submission order.
   */
  readonly submit: (request: CommitRequest, done: Completion) => Effect.Effect<void>
}>() {}

/** Bytes of messages in one group commit; and the queue holds at most 8 commits' worth. */
const BATCH_BYTES = 8 * 1024 * 1024

/** Roughly what a request holds in memory: its payload and a fixed allowance for the rest. */
const weightOf = (request: CommitRequest): number => {
  const m = request.message
  if (m.encryptedJson !== undefined) return 512 + 2 * m.encryptedJson.length
  const e = m.encrypted as { readonly ciphertext?: unknown } | null
  return 512 + (typeof e?.ciphertext === "string" ? e.ciphertext.length : 0)
}

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
    const queue = new CommitQueue<Pending>(cfg.commitBatchMax * 8, BATCH_BYTES * 8, (p) => weightOf(p.request))
    const wakeBatchers = (batch: ReadonlyArray<Pending>, results: ReadonlyArray<CommitResult>) => {
      const uids = new Set<string>()
      batch.forEach((p, i) => results[i]?._tag === "Stored" && uids.add(p.request.message.l2psUid))
      return Effect.forEach(uids, mempool.wake, { discard: true })
    }

    const scope = yield* Effect.scope
    const complete = (batch: ReadonlyArray<Pending>, outcome: (i: number) => Exit.Exit<CommitResult, StorageError>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const followUps: Array<Effect.Effect<void>> = []
        batch.forEach((p, i) => {
          const followUp = p.done(outcome(i), now)
          if (followUp !== undefined) followUps.push(followUp)
        })
        return followUps.length === 0
          ? Effect.void
          : Effect.forkIn(Effect.all(followUps, { discard: true }), scope).pipe(Effect.asVoid)
      })

    const store = (batch: ReadonlyArray<Pending>) =>
      storage.commit(batch.map((p) => p.request)).pipe(
        Metric.trackDuration(Metrics.commitLatency),
        // A defect fails the waiting sends too: @effect/sql dies when COMMIT fails (e.g. the database
        // went away mid-transaction), and the writer must outlive it or every later send hangs.
        Effect.matchCauseEffect({
          onFailure: (cause) => {
            const e = Exit.fail(Option.getOrElse(
              Cause.failureOption(cause),
              () => new StorageError({ operation: "commit", cause: Cause.squash(cause) })
            ))
            return complete(batch, () => e)
          },
          onSuccess: (results) => {
            const stored = results.filter((r) => r._tag === "Stored").length
            Metrics.messagesIn.unsafeUpdate(stored, [])
            return Effect.zipRight(wakeBatchers(batch, results), complete(batch, (i) => Exit.succeed(results[i]!)))
          }
        }),
        // A batch that started is finished, and its senders answered, even when the node is stopping.
        Effect.uninterruptible
      )

    const nextBatch = Effect.gen(function*() {
      yield* queue.nonEmpty
      // One event-loop turn before the batch closes: frames already received join it. Without it,
      // an embedded database that blocks the loop while it commits (PGlite) gets one message per
      // commit, since the writer wakes for the first send before the loop reads the others.
      if (queue.size < cfg.commitBatchMax) yield* ioTurn
      return queue.takeUpTo(cfg.commitBatchMax, BATCH_BYTES)
    })
    yield* nextBatch.pipe(
      Effect.flatMap(store),
      Effect.forever,
      Effect.forkScoped
    )
    // On shutdown, whatever was submitted before the writer stopped is still committed.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const rest = queue.takeUpTo(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
        return rest.length === 0 ? Effect.void : store(rest)
      })
    )

    const submit = (request: CommitRequest, done: Completion) => queue.offer({ request, done })
    const commit = (request: CommitRequest) =>
      Effect.flatMap(Deferred.make<CommitResult, StorageError>(), (result) =>
        Effect.zipRight(
          submit(request, (outcome) => {
            Deferred.unsafeDone(result, outcome)
            return undefined
          }),
          Deferred.await(result)
        ))
    return { submit, commit }
  })
)
