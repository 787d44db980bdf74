import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The expiry sweep looks for old pending messages across all recipients. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX l2ps_messages_pending_age ON l2ps_messages (ts) WHERE delivery_status = 'queued' OR awaiting_ack`
})
