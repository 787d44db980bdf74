/**
 * Seeds `l2ps_messages` directly with SQL (one INSERT … SELECT over generate_series, not through the
 * relay) for the history scenario: `total` messages spread over `conversations` conversations between
 * one real key (who then asks for history) and synthetic peers, all already delivered, and taken out of
 * the mempool in the same transaction so that the batch pipeline leaves them alone (they read as
 * `l2ps_pending`, in no batch). Timestamps are distinct ms ending an hour ago.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SQL } from "bun"
import { Effect, Layer } from "effect"
import * as SqlStores from "../src/node/SqlStores.ts"
import * as PgliteClient from "../src/storage/PgliteClient.ts"
import type { StorageChoice } from "./Targets.ts"

export interface Seeded {
  readonly peers: ReadonlyArray<string>
  readonly minTs: number
  readonly maxTs: number
  readonly seconds: number
}

/** The synthetic peer key of conversation `c`, as the SQL below spells it. */
const peerKey = (c: number) => c.toString(16).padStart(64, "0")

const seedSql = (me: string, total: number, conversations: number, minTs: number) => `
  INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
    delivery_status, awaiting_ack, send_outcome, delivered_at)
  SELECT 'default',
    CASE WHEN g % 2 = 0 THEN '${me}' ELSE p END,
    CASE WHEN g % 2 = 0 THEN p ELSE '${me}' END,
    CASE WHEN '${me}' < p COLLATE "C" THEN '${me}:' || p ELSE p || ':${me}' END,
    'seed-' || g,
    jsonb_build_object('ciphertext', repeat('QUJD', 86), 'nonce', 'bm9uY2Vub25jZTEy', 'ephemeralKey', p),
    ${minTs} + g, 'delivered', false, 'sent', ${minTs} + g
  FROM (SELECT g, lpad(to_hex(g % ${conversations}), 64, '0') AS p FROM generate_series(0, ${total - 1}) AS g) AS s`

/** Run in the seed's transaction: the insert's trigger put every seeded message in the mempool. */
const outOfMempool = `
  DELETE FROM l2ps_mempool p USING l2ps_messages m WHERE p.message_id = m.id AND m.message_hash LIKE 'seed-%'`

export const seedHistory = async (storage: StorageChoice, me: string, total: number, conversations: number): Promise<Seeded> => {
  const minTs = Date.now() - 3_600_000 - total
  const text = seedSql(me, total, conversations, minTs)
  const t = performance.now()
  if (storage.kind === "postgres") {
    const db = new SQL(storage.url)
    await db.begin(async (tx) => {
      await tx.unsafe(text)
      await tx.unsafe(outOfMempool)
    })
    // Settled before anything is timed: the vacuum autovacuum would start for a million new rows, and
    // the checkpoint after their WAL (both slow every commit of the server for seconds).
    await db.unsafe("VACUUM (ANALYZE) l2ps_messages")
    await db.unsafe("VACUUM (ANALYZE) l2ps_mempool")
    await db.unsafe("CHECKPOINT").catch(() => undefined)
    await db.close()
  } else {
    // PGlite is one process's: seed before the node opens the same directory, migrated by the node's
    // storage layer.
    await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.zipRight(sql.unsafe(text), sql.unsafe(outOfMempool)))
      yield* sql.unsafe("VACUUM (ANALYZE) l2ps_messages")
    }).pipe(
      Effect.provide(SqlStores.layer.pipe(Layer.provideMerge(PgliteClient.layer({ dataDir: `${storage.dataDir}/pglite` })))),
      Effect.scoped
    ) as Effect.Effect<void>)
  }
  return {
    peers: Array.from({ length: Math.min(conversations, total) }, (_, c) => peerKey(c)),
    minTs,
    maxTs: minTs + total,
    seconds: (performance.now() - t) / 1000
  }
}
