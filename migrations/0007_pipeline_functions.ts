import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * The batcher's mempool reads, one statement each instead of a transaction that set planner options
 * around them: under load every round trip waits for the node's event loop (busy with the relay), and
 * the four of each read were a good part of a batch cycle.
 *
 * The reads walk the mempool index whatever the statistics: a table never analysed (autovacuum off) is
 * planned as if a handful of rows were pending, with a bitmap scan and a sort that read every pending
 * row (100 ms and more behind a backlog of 100,000, against 1 ms along the index).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE FUNCTION l2ps_mempool_take(p_uid text, p_after bigint, p_max integer)
    RETURNS TABLE (id bigint, l2ps_uid text, message_hash text, encrypted jsonb, ts bigint)
    LANGUAGE sql STABLE
    SET enable_bitmapscan = off SET enable_seqscan = off
    AS $$
      SELECT m.id, m.l2ps_uid, m.message_hash, m.encrypted, m.ts FROM l2ps_messages m
      WHERE m.l2ps_uid = p_uid AND m.l2ps_status = 'l2ps_pending' AND m.id > p_after
      ORDER BY m.id LIMIT p_max
    $$`
  yield* sql`
    CREATE FUNCTION l2ps_mempool_count(p_uid text, p_after bigint, p_max integer)
    RETURNS bigint
    LANGUAGE sql STABLE
    SET enable_bitmapscan = off SET enable_seqscan = off
    AS $$
      SELECT count(*) FROM (
        SELECT 1 FROM l2ps_messages m
        WHERE m.l2ps_uid = p_uid AND m.l2ps_status = 'l2ps_pending' AND m.id > p_after
        LIMIT p_max) pending
    $$`
})
