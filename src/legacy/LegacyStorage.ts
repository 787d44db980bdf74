import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StorageError } from "../storage/Storage.ts"

/** Part of this port's contract (a host's own store writes legacy messages under it); defined in `domain/LegacyUid.ts`. */
export { LEGACY_UID } from "../domain/LegacyUid.ts"

/** A clientId's owner: the ML-DSA key that first registered it and its current ML-KEM key. */
export interface LegacyClient {
  readonly clientId: string
  readonly signingKey: Uint8Array
  readonly publicKey: Uint8Array
  readonly registeredAt: number
}

/** What `bind` did with a registration whose proof already verified. */
export type BindResult =
  | "Bound"
  /** Another signing key owns the clientId. */
  | "Taken"
  /** The ML-KEM key is one this clientId has replaced: a replayed old registration. */
  | "ReplacedKey"
  /** Its owner proved a server challenge once; a static proof no longer registers it. */
  | "ChallengeRequired"
  /** A new clientId, and its signing key already holds the most allowed. */
  | "KeyLimit"

export interface BindOptions {
  /** The registration proved a fresh server challenge. */
  readonly challenged: boolean
  readonly maxIdsPerKey: number
  /** Replaced ML-KEM keys remembered per clientId (the oldest are forgotten first). */
  readonly replacedKeysMax: number
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
   * Binds a clientId to its signing key on first use, or changes the ML-KEM key of its owner (the old
   * one is remembered and never accepted again), in one transaction.
   */
  readonly bind: (client: LegacyClient, options: BindOptions) => Effect.Effect<BindResult, StorageError>
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
