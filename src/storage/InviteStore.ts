import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StorageError } from "./Storage.ts"

/** An invite record as stored: its signature already checked against `account`. */
export interface Invite {
  readonly l2psUid: string
  readonly inviteId: string
  /** The account's ed25519 key, lower case. */
  readonly account: string
  readonly record: string
  readonly signature: string
  readonly expiresAt: number
  readonly oneTime: boolean
}

export type StoreResult =
  /** Stored; the account now has `invites` unexpired records in the network. */
  | { readonly _tag: "Stored"; readonly invites: number }
  /** The account already has `limit`; nothing stored. */
  | { readonly _tag: "Limit"; readonly limit: number }
  /** The id is taken (by this account or another); nothing stored. */
  | { readonly _tag: "Taken" }

/** Invite records; every write is committed before it returns. */
export interface InviteStoreShape {
  /** Stores a record unless the account has `limit` unexpired ones at `now` or the id is taken. */
  readonly store: (invite: Invite, now: number, limit: number) => Effect.Effect<StoreResult, StorageError>
  /**
   * The record of `inviteId` unless expired at `now`. A one-time record is deleted as it is read, in
   * one statement: of any number of concurrent fetches exactly one gets it.
   */
  readonly fetch: (l2psUid: string, inviteId: string, now: number) => Effect.Effect<Invite | undefined, StorageError>
  /** Deletes a record of `account`; false when it has none with that id. */
  readonly remove: (l2psUid: string, account: string, inviteId: string) => Effect.Effect<boolean, StorageError>
  /** Deletes every record expired at `now`; returns how many. */
  readonly prune: (now: number) => Effect.Effect<number, StorageError>
}

export class InviteStore extends Context.Tag("im/InviteStore")<InviteStore, InviteStoreShape>() {}
