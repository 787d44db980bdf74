import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StorageError } from "../storage/Storage.ts"

/** The network uid of legacy messages in `l2ps_messages` and in the batch pipeline. */
export { LEGACY_UID } from "../l2ps/Networks.ts"

/** A clientId's owner: the ML-DSA key that first registered it and its current ML-KEM key. */
export interface LegacyClient {
  readonly clientId: string
  readonly signingKey: Uint8Array
  readonly publicKey: Uint8Array
  readonly registeredAt: number
}

export interface NewLegacyMessage {
  readonly from: string
  readonly to: string
  readonly messageHash: string
  readonly message: unknown
  readonly timestamp: number
  /** `delivered` when handed to the recipient's live session, else `queued`. */
  readonly status: "delivered" | "queued"
  /** Whether the sender was told `message_queued`. */
  readonly outcome: "sent" | "queued"
}

export type StoreResult =
  | { readonly _tag: "Stored"; readonly id: string }
  /** The sender already has `senderLimit` queued messages. */
  | { readonly _tag: "SenderLimit" }
  | { readonly _tag: "Duplicate" }

export interface QueuedLegacyMessage {
  readonly id: string
  readonly from: string
  readonly message: unknown
  readonly timestamp: number
}

/** Durable state of the legacy server; every write is committed before it returns. */
export interface LegacyStorageShape {
  readonly client: (clientId: string) => Effect.Effect<LegacyClient | undefined, StorageError>
  /**
   * Binds a clientId to its signing key on first use, or refreshes the ML-KEM key of its owner;
   * false when another signing key owns it.
   */
  readonly bind: (client: LegacyClient) => Effect.Effect<boolean, StorageError>
  /** Stores a message; with `senderLimit`, only while the sender has fewer queued ones (counted here). */
  readonly store: (message: NewLegacyMessage, senderLimit?: number) => Effect.Effect<StoreResult, StorageError>
  /** Queued messages for a client, oldest first, past the `(timestamp, id)` cursor. */
  readonly queued: (
    to: string,
    after: { readonly timestamp: number; readonly id: string } | undefined,
    limit: number
  ) => Effect.Effect<ReadonlyArray<QueuedLegacyMessage>, StorageError>
  /** Queued messages written to the recipient's socket. */
  readonly markSent: (ids: ReadonlyArray<string>, at: number) => Effect.Effect<void, StorageError>
  /** Live messages that never reached the socket go back to the queue. */
  readonly requeue: (ids: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
  readonly queuedFrom: (from: string) => Effect.Effect<number, StorageError>
}

export class LegacyStorage extends Context.Tag("im/LegacyStorage")<LegacyStorage, LegacyStorageShape>() {}
