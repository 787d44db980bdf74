import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"

export type DeliveryStatus = "queued" | "delivered" | "sent" | "failed"
export type L2psStatus = "l2ps_pending" | "l2ps_batched" | "l2ps_confirmed"
/** What the sender was told: `message_sent` or `message_queued`. */
export type SendOutcome = "sent" | "queued"

export interface StoredMessage {
  readonly id: string
  readonly l2psUid: string
  readonly from: string
  readonly to: string
  readonly messageHash: string
  /** The encrypted payload's JSON text as storage returns it: relayed and served without being parsed. */
  readonly encryptedJson: string
  readonly timestamp: number
  readonly deliveryStatus: DeliveryStatus
  readonly l2psStatus: L2psStatus
  readonly l2psTxHash: string | null
}

export interface NewMessage {
  readonly l2psUid: string
  readonly from: string
  readonly to: string
  readonly messageHash: string
  /** The encrypted payload as JSON text, as the sender wrote it: stored and relayed as is. */
  readonly encryptedJson: string
  readonly timestamp: number
  readonly deliveryStatus: "queued" | "delivered" | "sent"
  /** Handed to a session that acknowledges: pending until its `ack`. */
  readonly awaitingAck: boolean
  readonly outcome: SendOutcome
}

/** Waiting in storage for its recipient: counted against the pair's offline limit. */
export const isPending = (m: NewMessage): boolean => m.deliveryStatus === "queued" || m.awaitingAck

export interface CommitRequest {
  readonly message: NewMessage
  /** Most pending messages allowed for the (sender, recipient) pair when this one is pending too. */
  readonly pairLimit: number
}

export type CommitResult =
  | { readonly _tag: "Stored"; readonly id: string }
  | { readonly _tag: "Duplicate"; readonly from: string; readonly outcome: SendOutcome }
  | { readonly _tag: "PairLimit" }

export class StorageError extends Data.TaggedError("StorageError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface PendingQuery {
  readonly l2psUid: string
  readonly to: string
  /** Also messages handed to a session that never acknowledged them. */
  readonly includeAwaitingAck: boolean
  /** Exclusive cursor `(timestamp, id)` of the previous page. */
  readonly after: { readonly timestamp: number; readonly id: string } | undefined
  readonly limit: number
}

/** Durable state of the node; every write is committed before it returns. */
export interface StorageShape {
  /** Stores a batch in one transaction; results follow the requests' order. */
  readonly commit: (batch: ReadonlyArray<CommitRequest>) => Effect.Effect<ReadonlyArray<CommitResult>, StorageError>
  readonly pending: (query: PendingQuery) => Effect.Effect<ReadonlyArray<StoredMessage>, StorageError>
  /** For each recipient, in order: whether any message waits for it (queued, or awaiting its ack). */
  readonly waiting: (
    recipients: ReadonlyArray<{ readonly l2psUid: string; readonly to: string }>
  ) => Effect.Effect<ReadonlyArray<boolean>, StorageError>
  /** Marks messages written to a recipient's socket: `sent`, or awaiting that recipient's ack. */
  readonly markHanded: (
    ids: ReadonlyArray<string>,
    awaitingAck: boolean,
    at: number
  ) => Effect.Effect<void, StorageError>
  /** Returns messages that could not be written to the recipient to its queue. */
  readonly requeue: (ids: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
  /** Records a recipient's acknowledgement; returns what it changed, for receipts. */
  readonly acknowledge: (
    l2psUid: string,
    to: string,
    hashes: ReadonlyArray<string>,
    at: number
  ) => Effect.Effect<ReadonlyArray<{ readonly messageHash: string; readonly from: string }>, StorageError>
  /**
   * Newest first, `before` exclusive, failed messages left out. With `maxChars`, the rows stop after the
   * first one whose `historyCharsOf`, with its predecessors', passes it (and after the second at the
   * least): a page of large messages is never read whole, and one more row than fits says there is more.
   */
  readonly history: (
    l2psUid: string,
    me: string,
    peer: string,
    before: number | undefined,
    limit: number,
    maxChars?: number
  ) => Effect.Effect<ReadonlyArray<StoredMessage>, StorageError>
  readonly byHash: (messageHash: string) => Effect.Effect<StoredMessage | undefined, StorageError>
  /** Queued messages stored before `olderThan` become `failed` (returns how many); older unacknowledged ones stop waiting. */
  readonly expirePending: (olderThan: number) => Effect.Effect<number, StorageError>
  /** A cheap round trip, for health checks. */
  readonly ping: Effect.Effect<void, StorageError>
}

export class Storage extends Context.Tag("im/Storage")<Storage, StorageShape>() {}

/** The reference `status`: the most advanced of the L2PS and delivery states. */
export const statusOf = (m: Pick<StoredMessage, "deliveryStatus" | "l2psStatus">): string =>
  m.l2psStatus === "l2ps_pending" ? m.deliveryStatus : m.l2psStatus

/** What a message counts against a history page: its payload's JSON and room for every other field. */
export const HISTORY_ROW_OVERHEAD = 1024
export const historyCharsOf = (m: StoredMessage): number => m.encryptedJson.length + HISTORY_ROW_OVERHEAD
