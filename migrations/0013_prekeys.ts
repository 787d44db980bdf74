import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Prekeys of secure sessions (docs/PROTOCOL.md, "Prekeys"): per device of an account in a network, its
 * signed X25519 prekey and last-resort ML-KEM-768 key, and its pools of one-time keys. Public keys and
 * signatures only, kept as bytes (half the size of their hex). One-time keys are handed out oldest key
 * id first and deleted as they are: the primary key of the device, kind and key id is that order, and
 * removing a device removes its pools.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE prekey_devices (
      l2ps_uid text NOT NULL,
      account_key text NOT NULL,
      device_id integer NOT NULL,
      registration_id integer NOT NULL,
      spk_id integer NOT NULL,
      spk_key bytea NOT NULL,
      spk_signature bytea NOT NULL,
      lrk_id integer NOT NULL,
      lrk_key bytea NOT NULL,
      lrk_signature bytea NOT NULL,
      updated_at bigint NOT NULL,
      PRIMARY KEY (l2ps_uid, account_key, device_id)
    )`
  yield* sql`
    CREATE TABLE prekey_one_time (
      l2ps_uid text NOT NULL,
      account_key text NOT NULL,
      device_id integer NOT NULL,
      kind text NOT NULL CHECK (kind IN ('opk', 'okem')),
      key_id integer NOT NULL,
      public_key bytea NOT NULL,
      signature bytea NOT NULL,
      PRIMARY KEY (l2ps_uid, account_key, device_id, kind, key_id),
      FOREIGN KEY (l2ps_uid, account_key, device_id) REFERENCES prekey_devices ON DELETE CASCADE
    )`
})
