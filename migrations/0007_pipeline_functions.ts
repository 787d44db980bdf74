import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * The batcher's reads and the prover's claim, each one statement. Under load every round trip waits for
 * the node's event loop (busy with the relay), and a batch cycle of nine statements — a transaction to
 * set planner options around the read, another to store the batch and claim its messages — had kept a
 * network's pipeline to ~5,000 messages a second while the relay accepted 30,000.
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
  // All or nothing: a message already claimed means another writer batched it, and the batch must not
  // be anchored twice.
  yield* sql`
    CREATE FUNCTION l2ps_save_batch(
      p_uid text, p_seq integer, p_root text, p_size integer, p_prev_batch_hash text, p_batch_hash text,
      p_signature text, p_tx_hash text, p_created_at bigint, p_message_ids bigint[])
    RETURNS SETOF l2ps_batches
    LANGUAGE plpgsql
    AS $$
    DECLARE
      saved l2ps_batches;
      claimed integer;
    BEGIN
      INSERT INTO l2ps_batches (l2ps_uid, seq, root, size, prev_batch_hash, batch_hash, signature, l2ps_tx_hash,
        status, created_at)
      VALUES (p_uid, p_seq, p_root, p_size, p_prev_batch_hash, p_batch_hash, p_signature, p_tx_hash, 'batched',
        p_created_at)
      RETURNING * INTO saved;
      UPDATE l2ps_messages SET l2ps_status = 'l2ps_batched', batch_id = saved.id
      WHERE id = ANY(p_message_ids) AND l2ps_status = 'l2ps_pending';
      GET DIAGNOSTICS claimed = ROW_COUNT;
      IF claimed <> cardinality(p_message_ids) THEN
        RAISE EXCEPTION 'batch %#%: % messages already batched', p_uid, p_seq, cardinality(p_message_ids) - claimed;
      END IF;
      RETURN NEXT saved;
    END
    $$`
})
