import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * A `messageHash` is unique per network and sender, no longer across the node: a global key told anyone
 * whether a hash existed ("Duplicate message") and made another sender's hash unusable. The new key leads
 * with the hash, so every lookup by hash (a retry, `ack`, `proof_request`) still walks one index; rows from
 * before were unique over the hash alone, hence over the wider key too: nothing to rewrite.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE UNIQUE INDEX l2ps_messages_sender_hash ON l2ps_messages (message_hash, l2ps_uid, from_key)`
  yield* sql`ALTER TABLE l2ps_messages DROP CONSTRAINT l2ps_messages_message_hash_key`
})
