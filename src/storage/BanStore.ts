import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StorageError } from "./Storage.ts"

export interface Ban {
  readonly key: string
  readonly reason: string
  readonly bannedAt: number
}

/** The keys an operator banned, kept across restarts. */
export interface BanStoreShape {
  readonly list: Effect.Effect<ReadonlyArray<Ban>, StorageError>
  /** Adds or replaces the ban of `key`. */
  readonly add: (ban: Ban) => Effect.Effect<void, StorageError>
  /** Returns whether the key was banned. */
  readonly remove: (key: string) => Effect.Effect<boolean, StorageError>
}

export class BanStore extends Context.Tag("im/BanStore")<BanStore, BanStoreShape>() {}
