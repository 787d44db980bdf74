import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Legacy signaling clients: a clientId belongs to the ML-DSA key that first registered it, with the
 * ML-KEM key handed to senders while its owner is offline. Legacy messages live in `l2ps_messages`
 * under `l2ps_uid = 'legacy'` (ids as keys), so the batch pipeline anchors them too.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE legacy_clients (
      client_id text PRIMARY KEY,
      signing_key text NOT NULL,
      public_key text NOT NULL,
      registered_at bigint NOT NULL,
      last_seen_at bigint NOT NULL
    )`
  // The per-sender offline cap counts queued messages across every recipient.
  yield* sql`
    CREATE INDEX l2ps_messages_sender_queued ON l2ps_messages (l2ps_uid, from_key)
    WHERE delivery_status = 'queued'`
})
