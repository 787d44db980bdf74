import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { coalesceWrites } from "../connection/Outbox.ts"
import { ioTurn } from "../internal/ioTurn.ts"
import { BatchWakeups } from "../l2ps/BatchWakeups.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Metrics from "../internal/Metrics.ts"
import { BatchQueue } from "./BatchQueue.ts"
import { isDataError } from "../storage/isDataError.ts"
import { type CommitRequest, type CommitResult, isPending, Storage, StorageError } from "../storage/Storage.ts"
import { supervise } from "../internal/supervise.ts"

/**
 * Runs in submission order once the request's commit ended (or failed), with the time then. Plain
 * code, so that a batch of 2,000 completes without a fiber wake-up per message; an effect it returns
 * (rare paths: storage follow-ups, error logs) runs on its own fiber.
 */
export type Completion = (
  outcome: Exit.Exit<CommitResult, StorageError>,
  now: number
) => Effect.Effect<void> | undefined

interface Pending {
  readonly request: CommitRequest
  readonly done: Completion
}

/** Group commit: one writer stores whatever sends are waiting, in one statement or transaction. */
export class Committer extends Context.Tag("im/Committer")<Committer, {
  /**
   * Queues the message for the writer (waiting only for room) and returns, so a session can read its
   * next frame while this one commits; `done` runs once it is stored or refused, in submission order.
   */
  readonly submit: (request: CommitRequest, done: Completion) => Effect.Effect<void>
  /** `submit` from plain code: false, and nothing queued, when the queue has no room now. */
  readonly unsafeSubmit: (request: CommitRequest, done: Completion) => boolean
  /** Whether `unsafeSubmit` of the request would succeed now. */
  readonly hasRoomFor: (request: CommitRequest) => boolean
}>() {}

/** How long stopping waits for the group commits in flight. */
const SHUTDOWN_WAIT = "10 seconds"

/** Group commits written at once. */
const IN_FLIGHT = 2

/** Bytes of messages in one group commit; and the queue holds at most 8 commits' worth. */
const BATCH_BYTES = 8 * 1024 * 1024

/**
 * Commits one failed group commit may be retried as, in parts: enough to find a few offenders among
 * 2,048 messages (each costs about two commits per halving, 22 for one in 2,048), not so many that a
 * batch of offenders costs thousands. Members not resolved within it fail with the batch's error.
 */
export const SPLIT_COMMITS = 64

/** What a message the database refused on its own gets. */
export const REFUSED_BY_STORAGE = "Message refused by storage (invalid data)"

const messageOf = (error: StorageError): string =>
  error.cause instanceof Error ? error.cause.message : String(error.operation)

/** Roughly what a request holds in memory: its payload (as text and parsed) and an allowance for the rest. */
const weightOf = (request: CommitRequest): number => 512 + 2 * request.message.encryptedJson.length

export const layer: Layer.Layer<Committer, never, Storage | NodeConfig | BatchWakeups> = Layer.scoped(
  Committer,
  Effect.gen(function*() {
    const storage = yield* Storage
    const cfg = yield* NodeConfig
    const wakeups = yield* BatchWakeups
    const queue = new BatchQueue<Pending>(cfg.commitBatchMax * 8, BATCH_BYTES * 8, (p) => weightOf(p.request))
    const wakeBatchers = (batch: ReadonlyArray<Pending>, results: ReadonlyArray<CommitResult | undefined>) => {
      const stored = new Map<string, number>()
      batch.forEach((p, i) => {
        const uid = p.request.message.l2psUid
        if (results[i]?._tag === "Stored") stored.set(uid, (stored.get(uid) ?? 0) + 1)
      })
      return Effect.forEach(stored, ([uid, n]) => wakeups.wake(uid, n), { discard: true })
    }

    const scope = yield* Effect.scope
    const complete = (batch: ReadonlyArray<Pending>, outcome: (i: number) => Exit.Exit<CommitResult, StorageError>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const followUps: Array<Effect.Effect<void>> = []
        // Each session's frames of the whole batch leave in one write.
        coalesceWrites(() =>
          batch.forEach((p, i) => {
            const followUp = p.done(outcome(i), now)
            if (followUp !== undefined) followUps.push(followUp)
          })
        )
        return followUps.length === 0
          ? Effect.void
          : Effect.forkIn(Effect.all(followUps, { discard: true }), scope).pipe(Effect.asVoid)
      })

    // A defect fails the waiting sends too: @effect/sql dies when COMMIT fails (e.g. the database went
    // away mid-transaction), and the writer must outlive it or every later send hangs.
    // (suspended: a storage that throws instead of failing is a defect like any other).
    const commitOf = (requests: ReadonlyArray<CommitRequest>) =>
      Effect.suspend(() => storage.commit(requests)).pipe(
        Metric.trackDuration(Metrics.commitLatency),
        Effect.sandbox,
        Effect.mapError((cause) =>
          Option.getOrElse(
            Cause.failureOption(cause),
            () => new StorageError({ operation: "commit", cause: Cause.squash(cause) })
          )
        )
      )

    type Outcome = Exit.Exit<CommitResult, StorageError>
    /** A batch's end: its results, the outcome of each member after a split, or one failure for all. */
    type Stored =
      | { readonly results: ReadonlyArray<CommitResult> }
      | { readonly outcomes: ReadonlyArray<Outcome> }
      | { readonly failure: Outcome }

    /**
     * A commit the database refused for its data is tried again in halves, then singly, in order, so that
     * only the offending message fails (each part counts pair limits and duplicates afresh, against what
     * the parts before it stored). Any other failure (database down) fails the part at once.
     */
    const commitApart = (requests: ReadonlyArray<CommitRequest>, error: StorageError, budget: { left: number }) =>
      Effect.gen(function*() {
        const outcomes: Array<Outcome> = []
        const go = (part: ReadonlyArray<CommitRequest>, failed: StorageError): Effect.Effect<void> =>
          Effect.suspend(() => {
            if (part.length === 1) {
              outcomes.push(Exit.succeed({ _tag: "Refused", reason: REFUSED_BY_STORAGE }))
              return Effect.void
            }
            const half = Math.ceil(part.length / 2)
            return Effect.forEach([part.slice(0, half), part.slice(half)], (sub) =>
              Effect.suspend(() => {
                if (budget.left <= 0) {
                  for (const _ of sub) outcomes.push(Exit.fail(failed))
                  return Effect.void
                }
                budget.left--
                return commitOf(sub).pipe(
                  Effect.matchEffect({
                    onSuccess: (results) => Effect.sync(() => results.forEach((r) => outcomes.push(Exit.succeed(r)))),
                    onFailure: (e) =>
                      isDataError(e)
                        ? go(sub, e)
                        : Effect.sync(() => sub.forEach(() => outcomes.push(Exit.fail(e))))
                  })
                )
              }), { discard: true })
          })
        // The driver's error carries the statement's parameters (payloads): only its message is logged.
        yield* Effect.logWarning(
          `a group commit of ${requests.length} refused for its data is retried in parts: ${messageOf(error)}`
        )
        yield* go(requests, error)
        return outcomes
      })

    /** Stores a batch, then completes it once the batch before it (`previous`) has completed. */
    const store = (batch: ReadonlyArray<Pending>, previous: Deferred.Deferred<void>, completed: Deferred.Deferred<void>) =>
      Effect.suspend(() => {
        const requests = batch.map((p) => p.request)
        return commitOf(requests).pipe(
          Effect.map((results): Stored => ({ results })),
          Effect.catchAll((e) =>
            isDataError(e) && requests.length > 0
              ? Effect.map(commitApart(requests, e, { left: SPLIT_COMMITS }), (outcomes): Stored => ({ outcomes }))
              : Effect.succeed<Stored>({ failure: Exit.fail(e) })
          )
        )
      }).pipe(
        Effect.zipLeft(Deferred.await(previous)),
        Effect.flatMap((stored) => {
          if ("failure" in stored) return complete(batch, () => stored.failure)
          const results = "results" in stored
            ? stored.results
            : stored.outcomes.map((o) => (Exit.isSuccess(o) ? o.value : undefined))
          Metrics.messagesIn.unsafeUpdate(results.filter((r) => r?._tag === "Stored").length, [])
          return Effect.zipRight(
            wakeBatchers(batch, results),
            "results" in stored
              ? complete(batch, (i) => Exit.succeed(stored.results[i]!))
              : complete(batch, (i) => stored.outcomes[i]!)
          )
        }),
        Effect.ensuring(Deferred.succeed(completed, undefined)),
        // A batch that started is finished, and its senders answered, even when the node is stopping.
        Effect.uninterruptible
      )

    // Up to IN_FLIGHT batches are written at once, completed in order: under a backlog, one is sent
    // while the one before waits for its flush. Without a backlog the writer waits for the commit in
    // flight, so that what arrives meanwhile makes one larger commit (fewer flushes, lower latency).
    // A batch with pending messages counts them per pair, so it waits for every batch before it to
    // commit and holds back the ones after it.
    let last = yield* Deferred.make<void>()
    yield* Deferred.succeed(last, undefined)
    const inFlight: Array<Deferred.Deferred<void>> = []
    const writeNext = Effect.gen(function*() {
      yield* queue.nonEmpty
      while (inFlight.length >= IN_FLIGHT || (inFlight.length > 0 && queue.size < cfg.commitBatchMax / 2)) {
        yield* Deferred.await(inFlight.shift()!)
      }
      // One event-loop turn before the batch closes: frames already received join it. Without it,
      // an embedded database that blocks the loop while it commits (PGlite) gets one message per
      // commit, since the writer wakes for the first send before the loop reads the others.
      if (queue.size < cfg.commitBatchMax) yield* ioTurn
      const batch = queue.takeUpTo(cfg.commitBatchMax, BATCH_BYTES)
      const exclusive = batch.some((p) => isPending(p.request.message))
      if (exclusive) while (inFlight.length > 0) yield* Deferred.await(inFlight.shift()!)
      const previous = last
      const completed = last = yield* Deferred.make<void>()
      inFlight.push(completed)
      // A daemon: stopping waits for it in the finalizer below, for a bounded time.
      yield* Effect.forkDaemon(store(batch, previous, completed))
      if (exclusive) yield* Deferred.await(completed)
    })
    yield* supervise("commit-writer", Effect.forever(writeNext))
    // On shutdown, whatever was submitted before the writer stopped is still committed; but a database
    // that does not answer holds the node's stop only for SHUTDOWN_WAIT (the wait is interruptible, or
    // its timeout could not fire in this finalizer), its senders left unanswered as their sockets close.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const rest = queue.takeUpTo(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
        const commits = inFlight.length + (rest.length > 0 ? 1 : 0)
        if (rest.length > 0) {
          const completed = yield* Deferred.make<void>()
          yield* Effect.forkDaemon(store(rest, last, completed))
          last = completed
        }
        const done = yield* Deferred.await(last).pipe(Effect.interruptible, Effect.timeout(SHUTDOWN_WAIT), Effect.option)
        if (done._tag === "None") {
          yield* Effect.logWarning(`stopping without the group commits still in flight: storage did not answer within ${SHUTDOWN_WAIT}`)
        } else {
          yield* Effect.logInfo(`shutdown: flushed ${commits} group commits (${rest.length} sends were still waiting for one)`)
        }
      })
    )

    return {
      submit: (request: CommitRequest, done: Completion) => queue.offer({ request, done }),
      unsafeSubmit: (request: CommitRequest, done: Completion) => queue.tryOffer({ request, done }),
      hasRoomFor: (request: CommitRequest) => queue.hasRoomFor(weightOf(request))
    }
  })
)
