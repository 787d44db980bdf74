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

/**
 * What a pending message weighs against the byte quotas: its payload's JSON text plus an allowance for
 * its row and index entries (a row is ~900 bytes on disk), so that counting a full quota reads at most
 * quota / 1 KiB rows.
 */
export const OFFLINE_MESSAGE_OVERHEAD = 1024

export const offlineWeightOf = (m: NewMessage): number => m.encryptedJson.length + OFFLINE_MESSAGE_OVERHEAD

/** Bytes (`offlineWeightOf`) of pending messages allowed per sender and per recipient of a network. */
export interface OfflineQuota {
  readonly offlineBytesPerSender: number
  readonly offlineBytesPerRecipient: number
}

export interface CommitRequest {
  readonly message: NewMessage
  /** Most pending messages allowed for the (sender, recipient) pair when this one is pending too. */
  readonly pairLimit: number
  /** Byte quotas checked when this one is pending too; none without. */
  readonly quota?: OfflineQuota | undefined
}

export type CommitResult =
  /** `timestamp`: the one stored, which storage may have raised past the message's own (`conversationClocks`). */
  | { readonly _tag: "Stored"; readonly id: string; readonly timestamp: number }
  /** The sender already stored this hash in this network: to `to`, answered with `outcome`. */
  | { readonly _tag: "Duplicate"; readonly to: string; readonly outcome: SendOutcome }
  | { readonly _tag: "PairLimit" }
  | { readonly _tag: "SenderQuota"; readonly limit: number }
  | { readonly _tag: "RecipientQuota"; readonly limit: number }
  /** Not stored: the database refuses this message's data (`reason` is for the sender). */
  | { readonly _tag: "Refused"; readonly reason: string }
  /** Not stored: its conversation's shared clock is already `MAX_AHEAD_MILLIS` ahead of the node's. */
  | { readonly _tag: "ConversationBusy" }

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
   * The senders of messages to `to` that were acknowledged already: a receipt of another device of the
   * recipient goes to them although the ack changed nothing.
   */
  readonly senders: (
    l2psUid: string,
    to: string,
    hashes: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<{ readonly messageHash: string; readonly from: string }>, StorageError>
  /**
   * Newest first, `before` exclusive, failed messages left out. With `maxChars`, the rows stop after the
   * first one whose `historyCharsOf`, with its predecessors', passes it (and after `SAME_MILLI_MAX + 1`
   * rows at the least, for a first group of equal timestamps): a page of large messages is never read whole, and one more row than fits says there is more.
   */
  readonly history: (
    l2psUid: string,
    me: string,
    peer: string,
    before: number | undefined,
    limit: number,
    maxChars?: number
  ) => Effect.Effect<ReadonlyArray<StoredMessage>, StorageError>
  /** A message by its key: the hash is unique per network and sender. */
  readonly byHash: (l2psUid: string, from: string, messageHash: string) => Effect.Effect<StoredMessage | undefined, StorageError>
  /**
   * Queued messages stored before `olderThan` expire (`expired`); older unacknowledged ones stop waiting.
   * Expired and failed rows are deleted (`deleted`) once out of the mempool, except members of batches
   * that keep no leaf hashes (their proofs are computed from every member's payload).
   */
  readonly expirePending: (olderThan: number) => Effect.Effect<{ readonly expired: number; readonly deleted: number }, StorageError>
  /** A cheap round trip, for health checks. */
  readonly ping: Effect.Effect<void, StorageError>
}

export class Storage extends Context.Tag("im/Storage")<Storage, StorageShape>() {}

/** The reference `status`: the most advanced of the L2PS and delivery states. */
export const statusOf = (m: Pick<StoredMessage, "deliveryStatus" | "l2psStatus">): DeliveryStatus | L2psStatus =>
  m.l2psStatus === "l2ps_pending" ? m.deliveryStatus : m.l2psStatus

/** What a message counts against a history page: its payload's JSON and room for every other field. */
export const HISTORY_ROW_OVERHEAD = 1024
export const historyCharsOf = (m: StoredMessage): number => m.encryptedJson.length + HISTORY_ROW_OVERHEAD
