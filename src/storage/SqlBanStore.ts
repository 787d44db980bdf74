import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { BanStore } from "./BanStore.ts"
import { StorageError } from "./Storage.ts"

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  return BanStore.of({
    list: sql<{ key: string; reason: string; banned_at: number | string }>`
      SELECT key, reason, banned_at FROM banned_keys ORDER BY banned_at, key`.pipe(
      Effect.map((rows) => rows.map((r) => ({ key: r.key, reason: r.reason, bannedAt: Number(r.banned_at) }))),
      Effect.mapError(fail("bans"))
    ),
    add: (ban) =>
      sql`INSERT INTO banned_keys (key, reason, banned_at) VALUES (${ban.key}, ${ban.reason}, ${ban.bannedAt})
        ON CONFLICT (key) DO UPDATE SET reason = EXCLUDED.reason, banned_at = EXCLUDED.banned_at`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("ban"))
      ),
    remove: (key) =>
      sql<{ key: string }>`DELETE FROM banned_keys WHERE key = ${key} RETURNING key`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(fail("unban"))
      )
  })
})

export const layer: Layer.Layer<BanStore, never, SqlClient.SqlClient> = Layer.effect(BanStore, make)
