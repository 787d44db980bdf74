import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Batches per network, and the embedded local L1 chain. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE l2ps_batches (
      id bigserial PRIMARY KEY,
      l2ps_uid text NOT NULL,
      seq integer NOT NULL,
      root text NOT NULL,
      size integer NOT NULL,
      prev_batch_hash text NOT NULL,
      batch_hash text NOT NULL UNIQUE,
      signature text NOT NULL,
      l2ps_tx_hash text NOT NULL UNIQUE,
      status text NOT NULL CHECK (status IN ('batched', 'submitted', 'confirmed')),
      block_number bigint,
      block_hash text,
      created_at bigint NOT NULL,
      UNIQUE (l2ps_uid, seq)
    )`
  yield* sql`CREATE INDEX l2ps_batches_open ON l2ps_batches (status, l2ps_uid, seq) WHERE status <> 'confirmed'`
  yield* sql`ALTER TABLE l2ps_messages ADD COLUMN batch_id bigint`
  yield* sql`CREATE INDEX l2ps_messages_batch ON l2ps_messages (batch_id, id) WHERE batch_id IS NOT NULL`
  yield* sql`
    CREATE TABLE l1_blocks (
      number bigint PRIMARY KEY,
      hash text NOT NULL UNIQUE,
      parent_hash text NOT NULL,
      ts bigint NOT NULL,
      tx_count integer NOT NULL
    )`
  yield* sql`
    CREATE TABLE l1_transactions (
      seq bigserial,
      tx_hash text PRIMARY KEY,
      payload jsonb NOT NULL,
      submitted_at bigint NOT NULL,
      block_number bigint
    )`
  yield* sql`CREATE INDEX l1_transactions_unmined ON l1_transactions (seq) WHERE block_number IS NULL`
})
