import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * A message's confirmation and transaction hash are its batch's, read through `batch_id`: confirming a
 * batch writes one row, not every message's row again (with its index entries and a dead tuple each).
 * `l2ps_status` keeps pending or batched; rows confirmed before this read the same through the join.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE l2ps_messages DROP COLUMN l2ps_tx_hash`
})
