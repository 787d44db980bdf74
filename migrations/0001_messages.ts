import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Messages, their delivery state and their L2PS state; the mempool is the `l2ps_pending` rows. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE l2ps_messages (
      id bigserial PRIMARY KEY,
      l2ps_uid text NOT NULL,
      from_key text NOT NULL,
      to_key text NOT NULL,
      conversation text NOT NULL,
      message_hash text NOT NULL UNIQUE,
      encrypted jsonb NOT NULL,
      ts bigint NOT NULL,
      delivery_status text NOT NULL CHECK (delivery_status IN ('queued', 'delivered', 'sent', 'failed')),
      awaiting_ack boolean NOT NULL DEFAULT false,
      send_outcome text NOT NULL CHECK (send_outcome IN ('sent', 'queued')),
      delivered_at bigint,
      l2ps_status text NOT NULL DEFAULT 'l2ps_pending'
        CHECK (l2ps_status IN ('l2ps_pending', 'l2ps_batched', 'l2ps_confirmed')),
      l2ps_tx_hash text
    )`
  yield* sql`CREATE INDEX l2ps_messages_history ON l2ps_messages (l2ps_uid, conversation, ts DESC)`
  yield* sql`
    CREATE INDEX l2ps_messages_pending ON l2ps_messages (l2ps_uid, to_key, ts, id)
    WHERE delivery_status = 'queued' OR awaiting_ack`
  yield* sql`
    CREATE INDEX l2ps_messages_pair_pending ON l2ps_messages (l2ps_uid, from_key, to_key)
    WHERE delivery_status = 'queued' OR awaiting_ack`
  yield* sql`CREATE INDEX l2ps_messages_mempool ON l2ps_messages (l2ps_uid, id) WHERE l2ps_status = 'l2ps_pending'`
})
