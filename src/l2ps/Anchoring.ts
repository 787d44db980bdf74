import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type { CryptoShape } from "../crypto/Crypto.ts"
import type { NodeKeyShape } from "../crypto/NodeKey.ts"
import { type L1, L1Error } from "../l1/L1.ts"
import type { NodeConfigShape } from "../config/NodeConfig.ts"
import type { Batch, PipelineStoreShape } from "./PipelineStore.ts"
import { anchorOfBatch } from "./Prover.ts"

const retryL1 = Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))

/** An L1 call that has not answered by then counts as failed (and is retried): a hung connection must not stall the stage. */
const L1_CALL_TIMEOUT = "30 seconds"
const answered = <A>(what: string, call: Effect.Effect<A, L1Error>): Effect.Effect<A, L1Error> =>
  Effect.timeoutFail(call, {
    duration: L1_CALL_TIMEOUT,
    onTimeout: () => new L1Error({ message: `${what}: no answer within ${L1_CALL_TIMEOUT}` })
  })

/**
 * Submits proven batches to L1, oldest first, retrying while L1 is down (the queues behind it fill and
 * messages wait in storage). Batches stored but never submitted, e.g. before a restart, go first.
 */
export const submitter = (
  uid: string,
  crypto: CryptoShape,
  key: NodeKeyShape,
  l1: typeof L1.Service,
  store: PipelineStoreShape,
  proven: Queue.Dequeue<Batch>,
  submitted: Queue.Enqueue<void>
) => {
  const submit = (b: Batch) =>
    answered("submit", l1.submit(anchorOfBatch(crypto, key, b))).pipe(
      Effect.tapError((e) => Effect.logWarning(`L1 submit of ${uid}#${b.seq} failed, retrying: ${e.message}`)),
      Effect.retry(retryL1),
      Effect.zipRight(store.markSubmitted(b.id)),
      Effect.zipRight(Queue.offer(submitted, undefined)),
      Effect.withSpan("Anchoring.submit", { attributes: { l2psUid: uid, seq: b.seq } })
    )
  return Effect.gen(function*() {
    for (const b of yield* store.batches(uid, "batched")) yield* submit(b)
    while (true) {
      const b = yield* Queue.take(proven)
      if (b.status === "batched") yield* submit(b)
    }
  })
}

/** Marks submitted batches included, then confirmed once `finalityDepth` blocks sit on top of theirs. */
export const finality = (
  uid: string,
  cfg: NodeConfigShape,
  l1: typeof L1.Service,
  store: PipelineStoreShape,
  submitted: Queue.Dequeue<void>
) =>
  Effect.gen(function*() {
    /** Whether batches are still waiting for their inclusion or finality (polled until none is). */
    const check = Effect.gen(function*() {
      const open = yield* store.batches(uid, "submitted")
      if (open.length === 0) return false
      const head = yield* answered("head", l1.head)
      if (Option.isNone(head)) return true
      let confirmed = 0
      for (const b of open) {
        const included = b.blockNumber !== null && b.blockHash !== null
          ? Option.some({ blockNumber: b.blockNumber, blockHash: b.blockHash })
          : yield* answered("inclusion", l1.inclusion(b.l2psTxHash))
        if (Option.isNone(included)) continue
        if (b.blockNumber === null) yield* store.markIncluded(b.id, included.value.blockNumber, included.value.blockHash)
        if (head.value.number >= included.value.blockNumber + cfg.finalityDepth) {
          yield* store.confirm(b.id)
          confirmed++
        }
      }
      return confirmed < open.length
    }).pipe(
      Effect.catchTag("L1Error", (e) => Effect.as(Effect.logWarning(`L1 unavailable for finality: ${e.message}`), true)),
      Effect.withSpan("Anchoring.finality", { attributes: { l2psUid: uid } })
    )
    // With nothing open, a network's finality waits for its submitter rather than polling storage every
    // block (a node serving a hundred networks would run a hundred queries a second for nothing).
    let open = true
    while (true) {
      yield* open ? Effect.race(Queue.take(submitted), Effect.sleep(cfg.blockIntervalMillis)) : Queue.take(submitted)
      open = yield* check
    }
  })
