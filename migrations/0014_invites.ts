import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Invite records (docs/PROTOCOL.md, "Invites"): sealed by the account for whoever holds the link, kept
 * as the client sent them. Looked up by (network, id); counted per (network, account) for the bound; the
 * expiry index serves the prune sweep.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE invites (
      l2ps_uid text NOT NULL,
      invite_id text NOT NULL,
      account_key text NOT NULL,
      record text NOT NULL,
      signature text NOT NULL,
      expires_at bigint NOT NULL,
      one_time boolean NOT NULL,
      created_at bigint NOT NULL,
      PRIMARY KEY (l2ps_uid, invite_id)
    )`
  yield* sql`CREATE INDEX invites_account ON invites (l2ps_uid, account_key)`
  yield* sql`CREATE INDEX invites_expiry ON invites (expires_at)`
})
