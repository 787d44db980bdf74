import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Nodes sharing one database. `cluster_owners`: one row per owned job (a network's pipeline, the
 * local chain's block producer); its epoch grows at each change of owner and fences the old one out.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE cluster_owners (
      name text PRIMARY KEY,
      epoch bigint NOT NULL,
      node_id text NOT NULL,
      since bigint NOT NULL
    )`
  // One row per node that ever joined: its heartbeat (its session-level lock `node/<id>` says it is alive).
  yield* sql`
    CREATE TABLE cluster_nodes (
      node_id text PRIMARY KEY,
      started_at bigint NOT NULL,
      heartbeat_at bigint NOT NULL
    )`
  // Units of each key's epoch quota leased by the nodes (see PgQuotaLeases).
  yield* sql`
    CREATE UNLOGGED TABLE cluster_quota (
      l2ps_uid text NOT NULL,
      key text NOT NULL,
      epoch bigint NOT NULL,
      used bigint NOT NULL,
      leased_at bigint NOT NULL,
      PRIMARY KEY (l2ps_uid, key, epoch)
    )`
  // Registration and history proofs used on any node, until their window passes (see PgSeenProofs).
  yield* sql`CREATE UNLOGGED TABLE cluster_seen_proofs (id text PRIMARY KEY, expiry bigint NOT NULL)`
  yield* sql`CREATE INDEX cluster_seen_proofs_expiry ON cluster_seen_proofs (expiry)`
})
