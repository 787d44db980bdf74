import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Keys the operator banned: an L2PS public key, a legacy clientId or a legacy signing key's SHA-256. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE banned_keys (
      key text PRIMARY KEY,
      reason text NOT NULL DEFAULT '',
      banned_at bigint NOT NULL
    )`
})
