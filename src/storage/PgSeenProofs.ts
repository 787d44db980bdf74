import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { supervise } from "../internal/supervise.ts"
import { SeenProofs } from "../internal/SeenProofs.ts"

/** Expired proofs are deleted this often by every node (a few rows each time; any node may do it). */
const PRUNE_MILLIS = 30_000

/**
 * Seen proofs in `cluster_seen_proofs`, an unlogged table: a crash of the database server empties
 * it, which only forgets proofs still inside their window (minutes), as a node restart does alone.
 */
export const layer: Layer.Layer<SeenProofs, never, SqlClient.SqlClient> = Layer.scoped(
  SeenProofs,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const prune = Effect.flatMap(Clock.currentTimeMillis, (now) => sql`DELETE FROM cluster_seen_proofs WHERE expiry < ${now}`)
    yield* supervise("seen-proofs/prune", Effect.repeat(prune, Schedule.spaced(PRUNE_MILLIS)))
    return SeenProofs.of({
      claim: (id, expiry) =>
        sql<{ id: string }>`
          INSERT INTO cluster_seen_proofs (id, expiry) VALUES (${id}, ${expiry})
          ON CONFLICT (id) DO NOTHING RETURNING id`.pipe(Effect.map((rows) => rows.length === 1))
    })
  })
)
