import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { supervise } from "../internal/supervise.ts"
import { QuotaLeases } from "../internal/QuotaLeases.ts"

/** Rows of epochs older than this are deleted (an epoch is at most hours long). */
const KEEP_MILLIS = 86_400_000
const PRUNE_MILLIS = 600_000

/**
 * `cluster_quota`: units of each key's quota leased per epoch, an unlogged table (a database crash
 * forgets the current epochs' counts, as a restart forgets them alone).
 */
export const layer: Layer.Layer<QuotaLeases, never, SqlClient.SqlClient> = Layer.scoped(
  QuotaLeases,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const prune = Effect.flatMap(Clock.currentTimeMillis, (now) => sql`DELETE FROM cluster_quota WHERE leased_at < ${now - KEEP_MILLIS}`)
    yield* supervise("quota-leases/prune", Effect.repeat(prune, Schedule.spaced(PRUNE_MILLIS)))
    return QuotaLeases.of({
      lease: (l2psUid, key, epoch, want, quota) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.gen(function*() {
            // The row first, then a locked read-modify-write: the grant is what was left, at most `want`.
            yield* sql`
              INSERT INTO cluster_quota (l2ps_uid, key, epoch, used, leased_at) VALUES (${l2psUid}, ${key}, ${epoch}, 0, ${now})
              ON CONFLICT DO NOTHING`
            const [row] = yield* sql<{ used: string }>`
              SELECT used::text FROM cluster_quota WHERE l2ps_uid = ${l2psUid} AND key = ${key} AND epoch = ${epoch} FOR UPDATE`
            const granted = Math.max(0, Math.min(want, quota - Number(row?.used ?? quota)))
            if (granted > 0) {
              yield* sql`
                UPDATE cluster_quota SET used = used + ${granted}, leased_at = ${now}
                WHERE l2ps_uid = ${l2psUid} AND key = ${key} AND epoch = ${epoch}`
            }
            return granted
          }).pipe(sql.withTransaction))
    })
  })
)
