import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import { ioTurn } from "../internal/ioTurn.ts"
import { Storage, StorageError } from "../storage/Storage.ts"
import { BatchQueue } from "./BatchQueue.ts"
import { supervise } from "../internal/supervise.ts"

interface Ask {
  readonly l2psUid: string
  readonly to: string
  readonly answer: Deferred.Deferred<boolean, StorageError>
}

/** Recipients asked about in one query. */
const BATCH = 1000

/**
 * Whether a recipient has messages waiting in storage (queued, or handed over and not acknowledged),
 * asked by every registration. Most keys have none; sessions registering together share one query (one
 * in flight, the asks arriving meanwhile make the next), instead of a query each: a registration storm
 * of 10,000 sessions had cost 10,000 queries and ~20 KB of garbage per session kept as heap capacity.
 */
export class PendingProbe extends Context.Tag("im/PendingProbe")<PendingProbe, {
  readonly hasWaiting: (l2psUid: string, to: string) => Effect.Effect<boolean, StorageError>
}>() {}

export const layer: Layer.Layer<PendingProbe, never, Storage> = Layer.scoped(
  PendingProbe,
  Effect.gen(function*() {
    const storage = yield* Storage
    // Registrations past this many waiting asks wait for room.
    const asks = new BatchQueue<Ask>(BATCH * 16, Number.MAX_SAFE_INTEGER, () => 0)
    const answerNext = Effect.gen(function*() {
      yield* asks.nonEmpty
      yield* ioTurn
      const batch = asks.takeUpTo(BATCH, Number.MAX_SAFE_INTEGER)
      // A defect (thrown, or a lost connection in @effect/sql) answers like a failed query: the asks
      // of this batch get an error, the probe goes on.
      const exit = yield* Effect.suspend(() => storage.waiting(batch)).pipe(
        Effect.catchAllDefect((cause) => Effect.fail(new StorageError({ operation: "waiting", cause }))),
        Effect.exit
      )
      batch.forEach((a, i) => Deferred.unsafeDone(a.answer, Exit.map(exit, (found) => found[i] ?? true)))
    })
    yield* supervise("pending-probe", Effect.forever(answerNext))
    return {
      hasWaiting: (l2psUid, to) =>
        Effect.suspend(() => {
          const answer = Deferred.unsafeMake<boolean, StorageError>(FiberId.none)
          return Effect.zipRight(asks.offer({ l2psUid, to, answer }), Deferred.await(answer))
        })
    }
  })
)
