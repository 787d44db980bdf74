import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Every registered session of every node sharing the database (see PgRosterStore): who is online
 * across the cluster and what counts toward the per-key session cap. Unlogged: a crash of the
 * database server empties it, and the nodes write their sessions again at their next check.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE UNLOGGED TABLE cluster_sessions (
      node_id text NOT NULL,
      sid bigint NOT NULL,
      l2ps_uid text NOT NULL,
      key text NOT NULL,
      since bigint NOT NULL,
      evicted boolean NOT NULL DEFAULT false,
      PRIMARY KEY (node_id, sid)
    )`
  yield* sql`CREATE INDEX cluster_sessions_key ON cluster_sessions (l2ps_uid, key)`
})
