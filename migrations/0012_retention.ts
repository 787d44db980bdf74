import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * MESSAGE_RETENTION: a confirmed batch whose messages were removed keeps its header (root, size,
 * chain, signature, L1 transaction) and is marked `pruned`, so that the retention sweep finds the
 * next batch to prune by index instead of reading every confirmed batch again.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE l2ps_batches ADD COLUMN pruned boolean NOT NULL DEFAULT false`
  yield* sql`CREATE INDEX l2ps_batches_prunable ON l2ps_batches (created_at, id) WHERE status = 'confirmed' AND NOT pruned`
})
