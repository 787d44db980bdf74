import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Nodes sharing one database give a conversation's messages their timestamps from one row per
 * conversation, keyed like the history index (network and the 64-bit hash of the conversation; two
 * conversations with the same hash share a clock, which only makes them share its rate): the last
 * timestamp handed out, and `step`, how many the last commit took (its messages end at `ts`). Logged,
 * so that a crash of the database never lets a conversation's clock go back below a stored message.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE conversation_clocks (
      l2ps_uid text NOT NULL,
      conversation_hash bigint NOT NULL,
      ts bigint NOT NULL,
      step bigint NOT NULL,
      PRIMARY KEY (l2ps_uid, conversation_hash)
    )`
})
