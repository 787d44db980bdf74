import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * The mempool and the batches' members in tables of their own, so that batching a message no longer
 * writes its row again. The claim had been an UPDATE of every batched message: a new version of a row of
 * ~900 bytes with an entry in each of its indexes, 20 µs of Postgres per message, and the largest part of
 * the pipeline's cost; now it deletes the message's mempool entry and adds a member row (~5 µs).
 *
 * A member row keeps the message's Merkle leaf hash, computed by the prover for the root anyway, so that
 * a `proof_request` reads the batch's hashes instead of every payload of the batch, hashed again
 * (a client may ask a hundred proofs a second). Members moved here from older batches have none; their
 * proofs are computed from the payloads as before.
 *
 * A message enters the mempool with its insert, by a statement trigger, whichever code inserts it (the
 * relay's group commit, the legacy server, an operator's import). Its L2PS status follows: pending until
 * it is a member of a batch, then its batch's.
 *
 * The batcher's reads are functions that walk the mempool's primary key whatever the statistics (a table
 * never analysed, autovacuum off, is planned as if a handful of rows were pending, with a scan and a sort
 * that read every pending row), one round trip each: under load every round trip waits for the node's
 * event loop, busy with the relay.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE l2ps_mempool (
      l2ps_uid text NOT NULL,
      message_id bigint NOT NULL,
      PRIMARY KEY (l2ps_uid, message_id)
    )`
  yield* sql`
    CREATE TABLE l2ps_batch_messages (
      message_id bigint PRIMARY KEY,
      batch_id bigint NOT NULL,
      leaf text
    )`
  yield* sql`CREATE INDEX l2ps_batch_messages_batch ON l2ps_batch_messages (batch_id, message_id)`
  yield* sql`
    INSERT INTO l2ps_mempool (l2ps_uid, message_id)
    SELECT l2ps_uid, id FROM l2ps_messages WHERE l2ps_status = 'l2ps_pending'`
  yield* sql`
    INSERT INTO l2ps_batch_messages (message_id, batch_id)
    SELECT id, batch_id FROM l2ps_messages WHERE batch_id IS NOT NULL`
  yield* sql`DROP INDEX l2ps_messages_mempool`
  yield* sql`DROP INDEX l2ps_messages_batch`
  yield* sql`ALTER TABLE l2ps_messages DROP COLUMN l2ps_status, DROP COLUMN batch_id`
  yield* sql`
    CREATE FUNCTION l2ps_mempool_add() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
      INSERT INTO l2ps_mempool (l2ps_uid, message_id) SELECT l2ps_uid, id FROM inserted_messages;
      RETURN NULL;
    END
    $$`
  yield* sql`
    CREATE TRIGGER l2ps_messages_enter_mempool
    AFTER INSERT ON l2ps_messages
    REFERENCING NEW TABLE AS inserted_messages
    FOR EACH STATEMENT EXECUTE FUNCTION l2ps_mempool_add()`
  yield* sql`
    CREATE FUNCTION l2ps_mempool_take(p_uid text, p_after bigint, p_max integer)
    RETURNS TABLE (id bigint, l2ps_uid text, message_hash text, encrypted jsonb, ts bigint)
    LANGUAGE sql STABLE
    SET enable_bitmapscan = off SET enable_seqscan = off
    AS $$
      SELECT m.id, m.l2ps_uid, m.message_hash, m.encrypted, m.ts
      FROM (
        SELECT p.message_id FROM l2ps_mempool p
        WHERE p.l2ps_uid = p_uid AND p.message_id > p_after
        ORDER BY p.message_id LIMIT p_max) pending
      JOIN l2ps_messages m ON m.id = pending.message_id
      ORDER BY m.id
    $$`
  yield* sql`
    CREATE FUNCTION l2ps_mempool_count(p_uid text, p_after bigint, p_max integer)
    RETURNS bigint
    LANGUAGE sql STABLE
    SET enable_bitmapscan = off SET enable_seqscan = off
    AS $$
      SELECT count(*) FROM (
        SELECT 1 FROM l2ps_mempool p
        WHERE p.l2ps_uid = p_uid AND p.message_id > p_after
        LIMIT p_max) pending
    $$`
})
