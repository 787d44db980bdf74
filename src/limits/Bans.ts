import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Ban, BanStore } from "../storage/BanStore.ts"
import type { StorageError } from "../storage/Storage.ts"

/** Longest key an operator may ban: a clientId is at most 128 characters, a key 64. */
export const BAN_KEY_MAX = 256

/**
 * Banned keys, read from storage at start and kept in memory: a registration asks `isBanned` without a
 * round trip. Storage is written first, so a ban the node acknowledged survives a restart.
 */
export class Bans extends Context.Tag("im/Bans")<Bans, {
  readonly isBanned: (key: string) => boolean
  readonly list: Effect.Effect<ReadonlyArray<Ban>, StorageError>
  readonly ban: (key: string, reason: string) => Effect.Effect<Ban, StorageError>
  /** Returns whether the key was banned. */
  readonly unban: (key: string) => Effect.Effect<boolean, StorageError>
}>() {}

export const layer: Layer.Layer<Bans, StorageError, BanStore> = Layer.effect(
  Bans,
  Effect.gen(function*() {
    const store = yield* BanStore
    const banned = new Set((yield* store.list).map((b) => b.key))
    return {
      isBanned: (key) => banned.size > 0 && banned.has(key),
      list: store.list,
      ban: (key, reason) =>
        Effect.gen(function*() {
          const ban = { key, reason, bannedAt: yield* Clock.currentTimeMillis }
          yield* store.add(ban)
          banned.add(key)
          return ban
        }),
      unban: (key) =>
        Effect.tap(store.remove(key), () => {
          banned.delete(key)
        })
    }
  })
)
