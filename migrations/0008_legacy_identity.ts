import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * What the 2.9.1 client's static register proof cannot carry, kept per clientId (issue 13, #4 and #7):
 * the ML-KEM keys it replaced, so that a captured old registration never rolls its key back; whether its
 * owner has proven a server challenge, after which static proofs for it are refused; and the signing
 * key's hash, indexed to bound the clientIds of one key (the key itself is too long for a btree entry).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE legacy_clients ADD COLUMN signing_key_hash text`
  yield* sql`UPDATE legacy_clients SET signing_key_hash = encode(sha256(decode(signing_key, 'hex')), 'hex')`
  yield* sql`ALTER TABLE legacy_clients ALTER COLUMN signing_key_hash SET NOT NULL`
  yield* sql`CREATE INDEX legacy_clients_signing_key_hash ON legacy_clients (signing_key_hash)`
  yield* sql`ALTER TABLE legacy_clients ADD COLUMN challenge_required boolean NOT NULL DEFAULT false`
  yield* sql`
    CREATE TABLE legacy_replaced_keys (
      id bigserial PRIMARY KEY,
      client_id text NOT NULL,
      key_hash text NOT NULL,
      replaced_at bigint NOT NULL,
      UNIQUE (client_id, key_hash)
    )`
})
