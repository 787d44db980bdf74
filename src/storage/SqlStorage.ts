import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import { conversationOf } from "../domain/Keys.ts"
import { BATCH_JOIN, COLUMNS, MESSAGES, type MessageRow, toMessage } from "./MessageRow.ts"
import {
  type CommitRequest,
  type CommitResult,
  HISTORY_ROW_OVERHEAD,
  isPending,
  type NewMessage,
  type SendOutcome,
  Storage,
  StorageError,
  type StorageShape
} from "./Storage.ts"

/**
 * Joins the payloads of a group commit, split again by `string_to_array`: a text array parameter quotes
 * and escapes every quote of every JSON text on the way in, and Postgres unescapes them. JSON text never
 * holds this control character unescaped, so it cannot occur inside a payload.
 */
const RS = "\u001e"

const pairOf = (r: CommitRequest): string => `${r.message.l2psUid}\u0000${r.message.from}\u0000${r.message.to}`

/** Storage over any `@effect/sql` client of the pg dialect: Postgres or embedded PGlite. */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  const columns = sql.literal(COLUMNS)
  const messages = sql.literal(MESSAGES)
  const batchJoin = sql.literal(BATCH_JOIN)

  const existing = (hashes: ReadonlyArray<string>) =>
    hashes.length === 0
      ? Effect.succeed(new Map<string, { from: string; outcome: SendOutcome }>())
      : sql<{ message_hash: string; from_key: string; send_outcome: SendOutcome }>`
          SELECT message_hash, from_key, send_outcome FROM l2ps_messages WHERE message_hash = ANY(${hashes}::text[])`
        .pipe(Effect.map((rows) =>
          new Map(rows.map((r) => [r.message_hash, { from: r.from_key, outcome: r.send_outcome }] as const))
        ))

  const pendingCounts = (requests: ReadonlyArray<CommitRequest>) => {
    const pairs = new Map<string, CommitRequest>()
    for (const r of requests) if (isPending(r.message)) pairs.set(pairOf(r), r)
    if (pairs.size === 0) return Effect.succeed(new Map<string, number>())
    const clauses = [...pairs.values()].map((r) =>
      sql`(l2ps_uid = ${r.message.l2psUid} AND from_key = ${r.message.from} AND to_key = ${r.message.to})`
    )
    return sql<{ l2ps_uid: string; from_key: string; to_key: string; n: string | number }>`
      SELECT l2ps_uid, from_key, to_key, count(*) AS n FROM l2ps_messages
      WHERE (delivery_status = 'queued' OR awaiting_ack) AND ${sql.or(clauses)}
      GROUP BY l2ps_uid, from_key, to_key`.pipe(
      Effect.map((rows) =>
        new Map<string, number>(rows.map((r) => [`${r.l2ps_uid}\u0000${r.from_key}\u0000${r.to_key}`, Number(r.n)]))
      )
    )
  }

  const commit: StorageShape["commit"] = (batch) => {
    // Pending messages count against their pair's limit, so duplicates must be known before counting, in
    // one transaction. A batch of live messages needs neither: one INSERT (atomic on its own, one round
    // trip), its conflicts being the duplicates.
    const checked = batch.some((r) => isPending(r.message))
    return Effect.gen(function*() {
      const results: Array<CommitResult | undefined> = batch.map(() => undefined)
      const known = checked
        ? yield* existing([...new Set(batch.map((r) => r.message.messageHash))])
        : new Map<string, { from: string; outcome: SendOutcome }>()
      const counts = yield* pendingCounts(batch.filter((r) => !known.has(r.message.messageHash)))
      const firstOf = new Map<string, number>()
      const toInsert: Array<number> = []
      batch.forEach((r, i) => {
        const hash = r.message.messageHash
        const prior = known.get(hash)
        if (prior !== undefined) {
          results[i] = { _tag: "Duplicate", from: prior.from, outcome: prior.outcome }
          return
        }
        if (firstOf.has(hash)) return
        if (isPending(r.message)) {
          const n = counts.get(pairOf(r)) ?? 0
          if (n >= r.pairLimit) {
            results[i] = { _tag: "PairLimit" }
            return
          }
          counts.set(pairOf(r), n + 1)
        }
        firstOf.set(hash, i)
        toInsert.push(i)
      })
      if (toInsert.length > 0) {
        const ms = toInsert.map((i) => batch[i]!.message)
        const column = <A>(f: (m: NewMessage) => A) => ms.map(f)
        // One array per column: the statement and its 11 parameters are the same whatever the batch size.
        const inserted = yield* sql<{ id: string | number; message_hash: string }>`
          INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
            delivery_status, awaiting_ack, send_outcome, delivered_at)
          SELECT u, f, t, c, h, e::jsonb, ts, ds, aa, so, da FROM unnest(
            ${column((m) => m.l2psUid)}::text[], ${column((m) => m.from)}::text[], ${column((m) => m.to)}::text[],
            ${column((m) => conversationOf(m.from, m.to))}::text[], ${column((m) => m.messageHash)}::text[],
            string_to_array(${ms.map((m) => m.encryptedJson).join(RS)}, ${RS}), ${column((m) => m.timestamp)}::int8[],
            ${column((m) => m.deliveryStatus)}::text[], ${column((m) => m.awaitingAck)}::bool[],
            ${column((m) => m.outcome)}::text[],
            ${column((m) => (m.deliveryStatus === "queued" ? null : m.timestamp))}::int8[]
          ) AS x(u, f, t, c, h, e, ts, ds, aa, so, da)
          ON CONFLICT (message_hash) DO NOTHING RETURNING id, message_hash`
        const ids = new Map(inserted.map((r) => [r.message_hash, String(r.id)] as const))
        // A conflict here is a duplicate not checked before, or committed by another node since.
        const raced = yield* existing(toInsert.map((i) => batch[i]!.message.messageHash).filter((h) => !ids.has(h)))
        for (const i of toInsert) {
          const hash = batch[i]!.message.messageHash
          const id = ids.get(hash)
          const other = raced.get(hash)
          results[i] = id !== undefined
            ? { _tag: "Stored", id }
            : { _tag: "Duplicate", from: other?.from ?? "", outcome: other?.outcome ?? "queued" }
        }
      }
      // Later copies of a hash within the batch are retries of the first.
      return batch.map((r, i): CommitResult => {
        const done = results[i]
        if (done !== undefined) return done
        const first = results[firstOf.get(r.message.messageHash)!]!
        const firstReq = batch[firstOf.get(r.message.messageHash)!]!
        return first._tag === "Stored"
          ? { _tag: "Duplicate", from: firstReq.message.from, outcome: firstReq.message.outcome }
          : first
      })
    }).pipe(checked ? sql.withTransaction : identity, Effect.mapError(fail("commit")))
  }

  const pending: StorageShape["pending"] = (q) =>
    sql<MessageRow>`
      SELECT ${columns} FROM (
        SELECT * FROM l2ps_messages
        WHERE l2ps_uid = ${q.l2psUid} AND to_key = ${q.to}
          AND ${q.includeAwaitingAck ? sql`(delivery_status = 'queued' OR awaiting_ack)` : sql`delivery_status = 'queued'`}
          AND ${q.after === undefined ? sql`TRUE` : sql`(ts, id) > (${q.after.timestamp}, ${Number(q.after.id)})`}
        ORDER BY ts ASC, id ASC
        LIMIT ${q.limit}) m ${batchJoin}
      ORDER BY m.ts ASC, m.id ASC`.pipe(Effect.map((rows) => rows.map(toMessage)), Effect.mapError(fail("pending")))

  const waiting: StorageShape["waiting"] = (recipients) =>
    recipients.length === 0 ? Effect.succeed([]) : sql<{ i: number | string }>`
      SELECT k.i FROM unnest(${recipients.map((r) => r.l2psUid)}::text[], ${recipients.map((r) => r.to)}::text[])
        WITH ORDINALITY AS k(u, t, i)
      WHERE EXISTS (
        SELECT 1 FROM l2ps_messages
        WHERE l2ps_uid = k.u AND to_key = k.t AND (delivery_status = 'queued' OR awaiting_ack))`.pipe(
      Effect.map((rows) => {
        const found = recipients.map(() => false)
        for (const r of rows) found[Number(r.i) - 1] = true
        return found
      }),
      Effect.mapError(fail("waiting"))
    )

  const markHanded: StorageShape["markHanded"] = (ids, awaitingAck, at) =>
    ids.length === 0 ? Effect.void : sql`
      UPDATE l2ps_messages
      SET delivery_status = 'sent', awaiting_ack = ${awaitingAck}, delivered_at = COALESCE(delivered_at, ${at})
      WHERE id IN ${sql.in(ids.map(Number))} AND delivery_status <> 'delivered'`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("markHanded"))
      )

  const requeue: StorageShape["requeue"] = (ids) =>
    ids.length === 0 ? Effect.void : sql`
      UPDATE l2ps_messages SET delivery_status = 'queued', awaiting_ack = false, delivered_at = NULL
      WHERE id IN ${sql.in(ids.map(Number))} AND delivery_status IN ('delivered', 'sent')`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("requeue"))
      )

  const acknowledge: StorageShape["acknowledge"] = (l2psUid, to, hashes, at) =>
    sql<{ message_hash: string; from_key: string }>`
      UPDATE l2ps_messages SET delivery_status = 'delivered', awaiting_ack = false, delivered_at = ${at}
      WHERE l2ps_uid = ${l2psUid} AND to_key = ${to} AND message_hash IN ${sql.in(hashes)}
        AND (delivery_status = 'queued' OR awaiting_ack)
      RETURNING message_hash, from_key`.pipe(
      Effect.map((rows) => rows.map((r) => ({ messageHash: r.message_hash, from: r.from_key }))),
      Effect.mapError(fail("acknowledge"))
    )

  // Along `l2ps_messages_conversation` (migration 0006): the hash finds the rows, the text rechecks them.
  // With `maxChars`, the sizes are summed over the page only (the window runs after its LIMIT).
  const history: StorageShape["history"] = (l2psUid, me, peer, before, limit, maxChars) => {
    const conversation = conversationOf(me, peer)
    const page = sql`
        SELECT * FROM l2ps_messages
        WHERE l2ps_uid = ${l2psUid} AND hashtextextended(conversation, 0) = hashtextextended(${conversation}, 0)
          AND conversation = ${conversation}
          AND delivery_status <> 'failed'
          AND ${before === undefined ? sql`TRUE` : sql`ts < ${before}`}
        ORDER BY ts DESC, id DESC
        LIMIT ${limit}`
    // Every row the page may hold, and the first it may not (so the caller knows there is more): rows
    // whose predecessors fit, and the second row whatever the first's size (a page holds at least one).
    const bounded = maxChars === undefined ? page : sql`
        SELECT * FROM (
          SELECT p.*, sum(length(p.encrypted::text) + ${HISTORY_ROW_OVERHEAD}) OVER w
            - (length(p.encrypted::text) + ${HISTORY_ROW_OVERHEAD}) AS chars_before, row_number() OVER w AS rn
          FROM (${page}) p
          WINDOW w AS (ORDER BY p.ts DESC, p.id DESC)) w
        WHERE w.rn <= 2 OR w.chars_before <= ${maxChars}`
    return sql<MessageRow>`
      SELECT ${columns} FROM (${bounded}) m ${batchJoin}
      ORDER BY m.ts DESC, m.id DESC`.pipe(Effect.map((rows) => rows.map(toMessage)), Effect.mapError(fail("history")))
  }

  const byHash: StorageShape["byHash"] = (messageHash) =>
    sql<MessageRow>`SELECT ${columns} FROM ${messages} WHERE m.message_hash = ${messageHash}`.pipe(
      Effect.map((rows) => (rows[0] === undefined ? undefined : toMessage(rows[0]))),
      Effect.mapError(fail("byHash"))
    )

  // Never handed over: failed. Handed to a device that never acknowledged: stays `sent`, stops waiting.
  const expirePending: StorageShape["expirePending"] = (olderThan) =>
    Effect.gen(function*() {
      const failed = yield* sql<{ id: string | number }>`
        UPDATE l2ps_messages SET delivery_status = 'failed'
        WHERE delivery_status = 'queued' AND ts < ${olderThan} RETURNING id`
      yield* sql`UPDATE l2ps_messages SET awaiting_ack = false WHERE awaiting_ack AND ts < ${olderThan}`
      return failed.length
    }).pipe(sql.withTransaction, Effect.mapError(fail("expirePending")))

  const ping: StorageShape["ping"] = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(fail("ping")))

  return Storage.of({ commit, pending, waiting, markHanded, requeue, acknowledge, history, byHash, expirePending, ping })
})

export const layer: Layer.Layer<Storage, never, SqlClient.SqlClient> = Layer.effect(Storage, make)
