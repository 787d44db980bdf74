import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { Fence } from "../internal/Ownership.ts"
import type { StorageError, StoredMessage } from "../storage/Storage.ts"

export type BatchStatus = "batched" | "submitted" | "confirmed"

export interface MempoolEntry {
  readonly id: string
  readonly l2psUid: string
  readonly messageHash: string
  readonly encrypted: unknown
  readonly timestamp: number
}

export interface NewBatch {
  readonly l2psUid: string
  readonly seq: number
  readonly root: string
  readonly size: number
  readonly prevBatchHash: string
  readonly batchHash: string
  readonly signature: string
  readonly l2psTxHash: string
  readonly createdAt: number
}

export interface Batch extends NewBatch {
  readonly id: string
  readonly status: BatchStatus
  readonly blockNumber: number | null
  readonly blockHash: string | null
}

export interface NetworkStats {
  readonly l2psUid: string
  readonly pending: number
  /** Server timestamp of the oldest message not yet batched. */
  readonly oldestPending: number | null
  readonly queued: number
  readonly unconfirmedBatches: number
  readonly oldestUnconfirmed: number | null
}

/** Where a retention sweep goes on: after this batch, in the order batches were created. */
export interface PruneCursor {
  readonly createdAt: number
  readonly id: string
  /** Whether the batch itself is done with (pruned, or passed over); otherwise it is worked on again. */
  readonly past: boolean
}

/** The pipeline's durable state: the mempool holds every stored message not yet in a batch; batches list their messages. */
export interface PipelineStoreShape {
  /** Whether any message is unbatched: one cheap statement, for sweeping every network often. */
  readonly anyPending: (l2psUid: string) => Effect.Effect<boolean, StorageError>
  /** How many unbatched messages past `afterId` (at most `max`). */
  readonly countPending: (l2psUid: string, afterId: string | undefined, max: number) => Effect.Effect<number, StorageError>
  /** The oldest unbatched messages past `afterId`, in id order. */
  readonly takePending: (
    l2psUid: string,
    afterId: string | undefined,
    max: number
  ) => Effect.Effect<ReadonlyArray<MempoolEntry>, StorageError>
  readonly lastBatch: (l2psUid: string) => Effect.Effect<Batch | undefined, StorageError>
  /**
   * Stores the batch and moves its messages into it with their leaf hashes (in the same order), atomically.
   * With a fence, only while that term of ownership is the current one (another node took over otherwise).
   */
  readonly saveBatch: (
    batch: NewBatch,
    messageIds: ReadonlyArray<string>,
    leaves: ReadonlyArray<string>,
    fence?: Fence
  ) => Effect.Effect<Batch, StorageError>
  readonly batches: (l2psUid: string, status: BatchStatus) => Effect.Effect<ReadonlyArray<Batch>, StorageError>
  readonly markSubmitted: (batchId: string) => Effect.Effect<void, StorageError>
  readonly markIncluded: (batchId: string, blockNumber: number, blockHash: string) => Effect.Effect<void, StorageError>
  /** The batch and its messages become confirmed. */
  readonly confirm: (batchId: string) => Effect.Effect<void, StorageError>
  /** Depths and ages for monitoring, per network that has any. */
  readonly stats: Effect.Effect<ReadonlyArray<NetworkStats>, StorageError>
  /**
   * A message with its batch and its position in the batch (-1 when not batched), without the batch's
   * leaves. Only a message `participant` sent or received in the network: a hash is unique per sender, so
   * the one it sent comes first, then the oldest sent to it (`from` picks the sender).
   */
  readonly placeOf: (query: InclusionQuery) => Effect.Effect<
    { readonly message: StoredMessage; readonly batch: Batch | undefined; readonly index: number } | undefined,
    StorageError
  >
  /**
   * One step of MESSAGE_RETENTION: in the oldest confirmed batch created before `olderThan` (after
   * `cursor`), deletes at most `chunk` messages that wait for no delivery. A batch left empty loses
   * its member rows and is marked pruned; its header stays. `next` is where the following step starts,
   * undefined when nothing is left to prune now; a batch with messages still waiting is passed over.
   */
  readonly prune: (olderThan: number, cursor: PruneCursor | undefined, chunk: number) => Effect.Effect<
    { readonly messages: number; readonly batches: number; readonly next: PruneCursor | undefined },
    StorageError
  >
  /** The newest `max` batches of a network, newest first. */
  readonly recentBatches: (l2psUid: string, max: number) => Effect.Effect<ReadonlyArray<Batch>, StorageError>
  readonly batchAt: (l2psUid: string, seq: number) => Effect.Effect<Batch | undefined, StorageError>
  /**
   * For the operator: every stored message with this hash in any network and from any sender (at most
   * `max`, oldest first), each with its batch and position as in `placeOf`.
   */
  readonly messagesByHash: (messageHash: string, max: number) => Effect.Effect<
    ReadonlyArray<{ readonly message: StoredMessage; readonly batch: Batch | undefined; readonly index: number }>,
    StorageError
  >
  /** The leaf hashes of a batch, in order. */
  readonly batchLeaves: (batchId: string) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /** `placeOf` with the batch's leaf hashes in order. */
  readonly inclusionOf: (query: InclusionQuery) => Effect.Effect<
    | {
      readonly message: StoredMessage
      readonly batch: Batch | undefined
      readonly leaves: ReadonlyArray<string>
      readonly index: number
    }
    | undefined,
    StorageError
  >
}

export interface InclusionQuery {
  readonly l2psUid: string
  readonly participant: string
  readonly messageHash: string
  readonly from?: string | undefined
}

export class PipelineStore extends Context.Tag("im/PipelineStore")<PipelineStore, PipelineStoreShape>() {}
