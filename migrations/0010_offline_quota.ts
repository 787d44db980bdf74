import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Byte quotas on what waits undelivered, per sender and per recipient: a message's `size` (its payload's
 * JSON text) is kept in its row, so that the group commit sums a sender's or a recipient's pending
 * messages along the partial indexes of pending rows (0001) without reading their payloads. Only pending
 * rows are counted, so only they are measured here; rows written before keep 0 until requeued.
 * Expired and failed rows are deleted by the expiry sweep, found through a small index of failed rows.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE l2ps_messages ADD COLUMN size integer NOT NULL DEFAULT 0`
  yield* sql`
    UPDATE l2ps_messages SET size = length(encrypted::text)
    WHERE delivery_status = 'queued' OR awaiting_ack`
  yield* sql`CREATE INDEX l2ps_messages_failed ON l2ps_messages (id) WHERE delivery_status = 'failed'`
})
