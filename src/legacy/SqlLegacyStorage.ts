import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { conversationOf } from "../domain/Keys.ts"
import { LEGACY_UID } from "../domain/LegacyUid.ts"
import { StorageError } from "../storage/Storage.ts"
import { type LegacyClient, LegacyStorage, type LegacyStorageShape } from "./LegacyStorage.ts"
import { spanned } from "../internal/spanned.ts"

interface ClientRow {
  readonly client_id: string
  readonly signing_key: string
  readonly public_key: string
  readonly registered_at: string | number
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const bytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"))

const toClient = (r: ClientRow): LegacyClient => ({
  clientId: r.client_id,
  signingKey: bytes(r.signing_key),
  publicKey: bytes(r.public_key),
  registeredAt: Number(r.registered_at)
})

/** Legacy storage over any `@effect/sql` client of the pg dialect: Postgres or embedded PGlite. */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation: `legacy.${operation}`, cause })

  const client: LegacyStorageShape["client"] = (clientId) =>
    sql<ClientRow>`
      SELECT client_id, signing_key, public_key, registered_at FROM legacy_clients WHERE client_id = ${clientId}`.pipe(
      Effect.map((rows) => (rows[0] === undefined ? undefined : toClient(rows[0]))),
      Effect.mapError(fail("client"))
    )

  const hashOf = (h: string) => sql`encode(sha256(decode(${h}, 'hex')), 'hex')`

  const bind: LegacyStorageShape["bind"] = (c, o) =>
    Effect.gen(function*() {
      const signingKey = hex(c.signingKey)
      const publicKey = hex(c.publicKey)
      const rows = yield* sql<{ signing_key: string; public_key: string; challenge_required: boolean }>`
        SELECT signing_key, public_key, challenge_required FROM legacy_clients WHERE client_id = ${c.clientId} FOR UPDATE`
      const row = rows[0]
      if (row === undefined) {
        // Serialises new ids of one signing key, so that concurrent registrations cannot pass the bound together.
        yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${hashOf(signingKey)}, 0))`
        const held = yield* sql<{ n: string | number }>`
          SELECT count(*) AS n FROM legacy_clients WHERE signing_key_hash = ${hashOf(signingKey)}`
        if (Number(held[0]?.n ?? 0) >= o.maxIdsPerKey) return "KeyLimit"
        const inserted = yield* sql`
          INSERT INTO legacy_clients (client_id, signing_key, signing_key_hash, public_key, registered_at, last_seen_at, challenge_required)
          VALUES (${c.clientId}, ${signingKey}, ${hashOf(signingKey)}, ${publicKey}, ${c.registeredAt}, ${c.registeredAt}, ${o.challenged})
          ON CONFLICT (client_id) DO NOTHING
          RETURNING client_id`
        return inserted.length === 1 ? "Bound" : "Taken"
      }
      if (row.signing_key !== signingKey) return "Taken"
      if (row.challenge_required && !o.challenged) return "ChallengeRequired"
      if (row.public_key !== publicKey) {
        const replaced = yield* sql`
          SELECT 1 FROM legacy_replaced_keys WHERE client_id = ${c.clientId} AND key_hash = ${hashOf(publicKey)}`
        if (replaced.length > 0) return "ReplacedKey"
        yield* sql`
          INSERT INTO legacy_replaced_keys (client_id, key_hash, replaced_at)
          VALUES (${c.clientId}, ${hashOf(row.public_key)}, ${c.registeredAt})
          ON CONFLICT (client_id, key_hash) DO NOTHING`
        yield* sql`
          DELETE FROM legacy_replaced_keys WHERE client_id = ${c.clientId} AND id NOT IN (
            SELECT id FROM legacy_replaced_keys WHERE client_id = ${c.clientId} ORDER BY id DESC LIMIT ${o.replacedKeysMax})`
      }
      yield* sql`
        UPDATE legacy_clients
        SET public_key = ${publicKey}, last_seen_at = ${c.registeredAt}, challenge_required = challenge_required OR ${o.challenged}
        WHERE client_id = ${c.clientId}`
      return "Bound" as const
    }).pipe(sql.withTransaction, Effect.mapError(fail("bind")))

  const store: LegacyStorageShape["store"] = (m, senderLimit) =>
    Effect.gen(function*() {
      const queued = m.status === "queued"
      const cap = senderLimit === undefined ? sql`TRUE` : sql`(
        SELECT count(*) FROM l2ps_messages
        WHERE l2ps_uid = ${LEGACY_UID} AND from_key = ${m.from} AND delivery_status = 'queued') < ${senderLimit}`
      const inserted = yield* sql<{ id: string | number }>`
        INSERT INTO l2ps_messages
          (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts, delivery_status, awaiting_ack,
           send_outcome, delivered_at)
        SELECT ${LEGACY_UID}, ${m.from}, ${m.to}, ${conversationOf(m.from, m.to)}, ${m.messageHash},
          ${JSON.stringify(m.message)}::text::jsonb, ${m.timestamp}::bigint, ${m.status}, false, ${m.outcome},
          ${queued ? null : m.timestamp}::bigint
        WHERE ${cap}
        ON CONFLICT (message_hash, l2ps_uid, from_key) DO NOTHING
        RETURNING id`
      if (inserted[0] !== undefined) return { _tag: "Stored", id: String(inserted[0].id) } as const
      const existing = yield* sql`
        SELECT 1 FROM l2ps_messages WHERE message_hash = ${m.messageHash} AND l2ps_uid = ${LEGACY_UID} AND from_key = ${m.from}`
      return existing.length > 0 ? { _tag: "Duplicate" } as const : { _tag: "SenderLimit" } as const
    }).pipe(Effect.mapError(fail("store")))

  const queued: LegacyStorageShape["queued"] = (to, after, limit) =>
    sql<{ id: string | number; from_key: string; encrypted: unknown; ts: string | number }>`
      SELECT id, from_key, encrypted, ts FROM l2ps_messages
      WHERE l2ps_uid = ${LEGACY_UID} AND to_key = ${to} AND delivery_status = 'queued'
        AND ${after === undefined ? sql`TRUE` : sql`(ts, id) > (${after.timestamp}, ${Number(after.id)})`}
      ORDER BY ts ASC, id ASC
      LIMIT ${limit}`.pipe(
      Effect.map((rows) =>
        rows.map((r) => ({
          id: String(r.id),
          from: r.from_key,
          message: typeof r.encrypted === "string" ? JSON.parse(r.encrypted) : r.encrypted,
          timestamp: Number(r.ts)
        }))
      ),
      Effect.mapError(fail("queued"))
    )

  const markSent: LegacyStorageShape["markSent"] = (ids, at) =>
    ids.length === 0 ? Effect.void : sql`
      UPDATE l2ps_messages SET delivery_status = 'sent', delivered_at = COALESCE(delivered_at, ${at})
      WHERE id IN ${sql.in(ids.map(Number))} AND delivery_status = 'queued'`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("markSent"))
      )

  const requeue: LegacyStorageShape["requeue"] = (ids) =>
    ids.length === 0 ? Effect.void : sql`
      UPDATE l2ps_messages SET delivery_status = 'queued', delivered_at = NULL
      WHERE id IN ${sql.in(ids.map(Number))} AND delivery_status = 'delivered'`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("requeue"))
      )

  const queuedFrom: LegacyStorageShape["queuedFrom"] = (from) =>
    sql<{ n: string | number }>`
      SELECT count(*) AS n FROM l2ps_messages
      WHERE l2ps_uid = ${LEGACY_UID} AND from_key = ${from} AND delivery_status = 'queued'`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.mapError(fail("queuedFrom"))
    )

  // `store` and `markSent` run per message: no span on them.
  return LegacyStorage.of(spanned(
    "LegacyStorage",
    { client, bind, store, queued, markSent, requeue, queuedFrom },
    ["client", "bind", "queued", "requeue", "queuedFrom"]
  ))
})

export const layer: Layer.Layer<LegacyStorage, never, SqlClient.SqlClient> = Layer.effect(LegacyStorage, make)
