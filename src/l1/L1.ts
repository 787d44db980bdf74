import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

/** A batch anchor: only roots, sizes, hashes and signatures, nothing about participants or plaintext. */
export interface BatchAnchor {
  readonly type: "l2psBatch"
  readonly l2psUid: string
  readonly seq: number
  readonly root: string
  readonly size: number
  readonly prevBatchHash: string
  readonly batchHash: string
  /** ML-DSA-65 signature of the node over the batch hash (hex). */
  readonly signature: string
  readonly signer: string
}

export interface L1Transaction {
  /** The L1 transaction hash; submitting the same hash twice is a no-op. */
  readonly hash: string
  readonly payload: BatchAnchor
}

export interface Inclusion {
  readonly blockNumber: number
  readonly blockHash: string
}

export interface Head {
  readonly number: number
  readonly hash: string
}

export class L1Error extends Data.TaggedError("L1Error")<{ readonly message: string; readonly cause?: unknown }> {}

/** The chain batches are anchored on: an embedded local chain, or the host Demos node's. */
export class L1 extends Context.Tag("im/L1")<L1, {
  readonly name: string
  /** Idempotent by transaction hash. */
  readonly submit: (tx: L1Transaction) => Effect.Effect<void, L1Error>
  readonly inclusion: (txHash: string) => Effect.Effect<Option.Option<Inclusion>, L1Error>
  readonly head: Effect.Effect<Option.Option<Head>, L1Error>
}>() {}
