import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** What each node reports of itself next to its heartbeat, for the other nodes' status pages. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    ALTER TABLE cluster_nodes
      ADD COLUMN host text,
      ADD COLUMN version text,
      ADD COLUMN l2ps_port integer,
      ADD COLUMN legacy_port integer,
      ADD COLUMN admin_port integer,
      ADD COLUMN sessions integer`
})
