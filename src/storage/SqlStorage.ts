import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import { isStorableText, jsonbRefusal } from "../domain/JsonbRefusal.ts"
import { conversationOf } from "../domain/Keys.ts"
import { isDataError } from "./isDataError.ts"
import { BATCH_JOIN, COLUMNS, MESSAGES, type MessageRow, toMessage } from "./MessageRow.ts"
import { MAX_AHEAD_MILLIS, SAME_MILLI_MAX } from "../domain/Timestamps.ts"
import { spanned } from "../internal/spanned.ts"
import {
  type CommitRequest,
  type CommitResult,
  HISTORY_ROW_OVERHEAD,
  isPending,
  type NewMessage,
  OFFLINE_MESSAGE_OVERHEAD,
  offlineWeightOf,
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

/** Why the insert is known to fail on this message's data. */
const refusalOf = (m: NewMessage): string | undefined => {
  const payload = jsonbRefusal(m.encryptedJson)
  if (payload !== undefined) return `Encrypted payload cannot be stored: it holds ${payload}`
  if (!isStorableText(m.messageHash)) {
    return "messageHash must not contain NUL or unpaired surrogates"
  }
  return undefined
}

const pairOf = (r: CommitRequest): string => `${r.message.l2psUid}\u0000${r.message.from}\u0000${r.message.to}`

/** A message's identity: its hash is unique per network and sender. */
const sentKeyOf = (m: NewMessage): string => `${m.l2psUid}\u0000${m.from}\u0000${m.messageHash}`

interface Sent {
  readonly to: string
  readonly outcome: SendOutcome
}

interface Usage {
  readonly pairs: Map<string, number>
  readonly senders: Map<string, number>
  readonly recipients: Map<string, number>
}

/** Counts a pending message against its pair's limit and its byte quotas, or says which one it is past. */
const charge = (usage: Usage, r: CommitRequest): CommitResult | undefined => {
  const m = r.message
  const pair = pairOf(r)
  const n = usage.pairs.get(pair) ?? 0
  if (n >= r.pairLimit) return { _tag: "PairLimit" }
  const sender = `${m.l2psUid}\u0000${m.from}`
  const recipient = `${m.l2psUid}\u0000${m.to}`
  const weight = offlineWeightOf(m)
  const fromSender = (usage.senders.get(sender) ?? 0) + weight
  const forRecipient = (usage.recipients.get(recipient) ?? 0) + weight
  if (r.quota !== undefined) {
    if (fromSender > r.quota.offlineBytesPerSender) return { _tag: "SenderQuota", limit: r.quota.offlineBytesPerSender }
    if (forRecipient > r.quota.offlineBytesPerRecipient) return { _tag: "RecipientQuota", limit: r.quota.offlineBytesPerRecipient }
  }
  usage.pairs.set(pair, n + 1)
  usage.senders.set(sender, fromSender)
  usage.recipients.set(recipient, forRecipient)
  return undefined
}

export interface Options {
  /**
   * Timestamps from the conversation's row of `conversation_clocks` (migration 0016), taken by the
   * statement that inserts the messages: each stored message gets at least the row's last timestamp + 1
   * and at least its own, so that a conversation's timestamps strictly increase, in commit order,
   * whichever node writes it. For nodes sharing one database; alone, the node's `ServerClock` already
   * orders them.
   */
  readonly conversationClocks?: boolean
}

/** Storage over any `@effect/sql` client of the pg dialect: Postgres or embedded PGlite. */
export const make = (options: Options = {}) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  const columns = sql.literal(COLUMNS)
  const messages = sql.literal(MESSAGES)
  const batchJoin = sql.literal(BATCH_JOIN)

  // By (hash, network, sender), the unique key of migration 0009.
  const existing = (requests: ReadonlyArray<CommitRequest>) => {
    const keys = new Map<string, NewMessage>()
    for (const r of requests) keys.set(sentKeyOf(r.message), r.message)
    if (keys.size === 0) return Effect.succeed(new Map<string, Sent>())
    const ms = [...keys.values()]
    return sql<{ message_hash: string; l2ps_uid: string; from_key: string; to_key: string; send_outcome: SendOutcome }>`
      SELECT message_hash, l2ps_uid, from_key, to_key, send_outcome FROM l2ps_messages
      WHERE (message_hash, l2ps_uid, from_key) IN (
        SELECT * FROM unnest(${ms.map((m) => m.messageHash)}::text[], ${ms.map((m) => m.l2psUid)}::text[],
          ${ms.map((m) => m.from)}::text[]))`.pipe(
      Effect.map((rows) =>
        new Map(rows.map((r) => [`${r.l2ps_uid}\u0000${r.from_key}\u0000${r.message_hash}`, { to: r.to_key, outcome: r.send_outcome }] as const))
      )
    )
  }

  /**
   * What already waits, in one statement: pending messages per pair of the batch's pending messages, and
   * per sender and per recipient with their bytes. Each part is a range of a partial index of pending rows
   * (0001), and a sender's or recipient's range is at most its quota / OFFLINE_MESSAGE_OVERHEAD rows.
   */
  const pendingUsage = (requests: ReadonlyArray<CommitRequest>) => {
    const pairs = new Map<string, NewMessage>()
    const senders = new Map<string, NewMessage>()
    const recipients = new Map<string, NewMessage>()
    for (const r of requests) {
      if (!isPending(r.message)) continue
      const m = r.message
      pairs.set(pairOf(r), m)
      senders.set(`${m.l2psUid}\u0000${m.from}`, m)
      recipients.set(`${m.l2psUid}\u0000${m.to}`, m)
    }
    const usage = { pairs: new Map<string, number>(), senders: new Map<string, number>(), recipients: new Map<string, number>() }
    if (pairs.size === 0) return Effect.succeed(usage)
    const p = [...pairs.values()]
    const s = [...senders.values()]
    const t = [...recipients.values()]
    return sql<{ u: string; f: string | null; t: string | null; n: string | number; bytes: string | number | null }>`
      SELECT m.l2ps_uid AS u, m.from_key AS f, m.to_key AS t, count(*) AS n, NULL::int8 AS bytes
      FROM unnest(${p.map((m) => m.l2psUid)}::text[], ${p.map((m) => m.from)}::text[], ${p.map((m) => m.to)}::text[]) AS k(u, f, t)
      JOIN l2ps_messages m ON m.l2ps_uid = k.u AND m.from_key = k.f AND m.to_key = k.t
      WHERE (m.delivery_status = 'queued' OR m.awaiting_ack)
      GROUP BY m.l2ps_uid, m.from_key, m.to_key
      UNION ALL
      SELECT m.l2ps_uid, m.from_key, NULL, count(*), sum(m.size)
      FROM unnest(${s.map((m) => m.l2psUid)}::text[], ${s.map((m) => m.from)}::text[]) AS k(u, f)
      JOIN l2ps_messages m ON m.l2ps_uid = k.u AND m.from_key = k.f
      WHERE (m.delivery_status = 'queued' OR m.awaiting_ack)
      GROUP BY m.l2ps_uid, m.from_key
      UNION ALL
      SELECT m.l2ps_uid, NULL, m.to_key, count(*), sum(m.size)
      FROM unnest(${t.map((m) => m.l2psUid)}::text[], ${t.map((m) => m.to)}::text[]) AS k(u, t)
      JOIN l2ps_messages m ON m.l2ps_uid = k.u AND m.to_key = k.t
      WHERE (m.delivery_status = 'queued' OR m.awaiting_ack)
      GROUP BY m.l2ps_uid, m.to_key`.pipe(
      Effect.map((rows) => {
        for (const r of rows) {
          const n = Number(r.n)
          if (r.f !== null && r.t !== null) usage.pairs.set(`${r.u}\u0000${r.f}\u0000${r.t}`, n)
          else if (r.f !== null) usage.senders.set(`${r.u}\u0000${r.f}`, Number(r.bytes ?? 0) + n * OFFLINE_MESSAGE_OVERHEAD)
          else if (r.t !== null) usage.recipients.set(`${r.u}\u0000${r.t}`, Number(r.bytes ?? 0) + n * OFFLINE_MESSAGE_OVERHEAD)
        }
        return usage
      })
    )
  }

  /**
   * One refused row fails the whole statement, and with it every other sender's message. The relay
   * refuses what the database would at validation; should a batch still fail for its data, the messages
   * it is known to refuse are answered `Refused` and the others committed again, once. Checked only then,
   * so that a commit that succeeds costs nothing more.
   */
  const commit: StorageShape["commit"] = (batch) =>
    commitOnce(batch).pipe(Effect.catchIf(isDataError, (error) => {
      const reasons = batch.map((r) => refusalOf(r.message))
      if (reasons.every((r) => r === undefined)) return Effect.fail(error)
      return Effect.map(commitOnce(batch.filter((_, i) => reasons[i] === undefined)), (results) => {
        let next = 0
        return batch.map((_, i): CommitResult => {
          const reason = reasons[i]
          return reason === undefined ? results[next++]! : { _tag: "Refused", reason }
        })
      })
    }))

  /** The columns of the messages to insert, one array each: the statement is the same whatever the batch size. */
  const columnsOf = (ms: ReadonlyArray<NewMessage>) => {
    const column = <A>(f: (m: NewMessage) => A) => ms.map(f)
    return sql`
      ${column((m) => m.l2psUid)}::text[], ${column((m) => m.from)}::text[], ${column((m) => m.to)}::text[],
      ${column((m) => conversationOf(m.from, m.to))}::text[], ${column((m) => m.messageHash)}::text[],
      string_to_array(${ms.map((m) => m.encryptedJson).join(RS)}, ${RS}), ${column((m) => m.timestamp)}::int8[],
      ${column((m) => m.deliveryStatus)}::text[], ${column((m) => m.awaitingAck)}::bool[],
      ${column((m) => m.outcome)}::text[], ${column((m) => m.encryptedJson.length)}::int4[]`
  }

  type Inserted = { id: string | number; message_hash: string; l2ps_uid: string; from_key: string; ts: string | number }

  const insertPlain = (ms: ReadonlyArray<NewMessage>) =>
    sql<Inserted>`
      INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
        delivery_status, awaiting_ack, send_outcome, delivered_at, size)
      SELECT u, f, t, c, h, e::jsonb, ts, ds, aa, so, CASE WHEN ds = 'queued' THEN NULL ELSE ts END, sz
      FROM unnest(${columnsOf(ms)}) AS x(u, f, t, c, h, e, ts, ds, aa, so, sz)
      ON CONFLICT (message_hash, l2ps_uid, from_key) DO NOTHING RETURNING id, message_hash, l2ps_uid, from_key, ts`.pipe(
      Effect.map((rows) => ({ rows, busy: [] as ReadonlyArray<number> }))
    )

  /**
   * The insert with its timestamps from the clock rows, in one statement (one round trip, atomic without
   * a transaction). The k-th of a row's n messages in the batch (a row is a network and a conversation
   * hash) gets B + k, where B = GREATEST(the row's last, max over its messages of (own stamp - k)): each
   * is after the row's last and at or after its own stamp, and they increase in batch order. The row
   * becomes B + n, its `step` n. The upsert locks the rows in key order (no cycle between nodes) and is
   * skipped, its messages answered busy (`busy`: their 0-based positions), when B + n would pass
   * `latest`. A new row starts at the conversation's newest stored timestamp.
   */
  const insertClocked = (ms: ReadonlyArray<NewMessage>, latest: number) =>
    sql<Inserted & { busy: string | number | null }>`
      WITH x AS (
        SELECT x.*, hashtextextended(x.c, 0) AS ch, row_number() OVER (PARTITION BY x.u, hashtextextended(x.c, 0) ORDER BY x.ord) AS k
        FROM unnest(${columnsOf(ms)}) WITH ORDINALITY AS x(u, f, t, c, h, e, ts, ds, aa, so, sz, ord)),
      g AS (
        SELECT u, ch, max(ts - k) AS m, count(*) AS n FROM x GROUP BY u, ch),
      clk AS (
        INSERT INTO conversation_clocks (l2ps_uid, conversation_hash, ts, step)
        SELECT u, ch, v, n FROM (
          SELECT g.u, g.ch, g.n, GREATEST(g.m, COALESCE((
            SELECT max(mm.ts) FROM l2ps_messages mm WHERE mm.l2ps_uid = g.u AND hashtextextended(mm.conversation, 0) = g.ch), 0)) + g.n AS v
          FROM g) s
        WHERE v <= ${latest}
        ORDER BY u, ch
        ON CONFLICT (l2ps_uid, conversation_hash) DO UPDATE
          SET ts = GREATEST(conversation_clocks.ts + EXCLUDED.step, EXCLUDED.ts), step = EXCLUDED.step
          WHERE GREATEST(conversation_clocks.ts + EXCLUDED.step, EXCLUDED.ts) <= ${latest}
        RETURNING l2ps_uid, conversation_hash, ts, step),
      ins AS (
        INSERT INTO l2ps_messages (l2ps_uid, from_key, to_key, conversation, message_hash, encrypted, ts,
          delivery_status, awaiting_ack, send_outcome, delivered_at, size)
        SELECT x.u, x.f, x.t, x.c, x.h, x.e::jsonb, clk.ts - clk.step + x.k, x.ds, x.aa, x.so,
          CASE WHEN x.ds = 'queued' THEN NULL ELSE clk.ts - clk.step + x.k END, x.sz
        FROM x JOIN clk ON clk.l2ps_uid = x.u AND clk.conversation_hash = x.ch
        ON CONFLICT (message_hash, l2ps_uid, from_key) DO NOTHING RETURNING id, message_hash, l2ps_uid, from_key, ts)
      SELECT id, message_hash, l2ps_uid, from_key, ts, NULL::int8 AS busy FROM ins
      UNION ALL
      SELECT NULL, NULL, NULL, NULL, NULL, x.ord - 1 FROM x
      WHERE NOT EXISTS (SELECT 1 FROM clk WHERE clk.l2ps_uid = x.u AND clk.conversation_hash = x.ch)`.pipe(
      Effect.map((all) => ({
        rows: all.filter((r) => r.busy === null),
        busy: all.filter((r) => r.busy !== null).map((r) => Number(r.busy))
      }))
    )

  const commitOnce: StorageShape["commit"] = (batch) => {
    // Pending messages count against their pair's limit, so duplicates must be known before counting, in
    // one transaction. A batch of live messages needs neither: one INSERT (atomic on its own, one round
    // trip), its conflicts being the duplicates.
    const checked = batch.some((r) => isPending(r.message))
    const clocked = options.conversationClocks === true
    return Effect.gen(function*() {
      const results: Array<CommitResult | undefined> = batch.map(() => undefined)
      const known = checked ? yield* existing(batch) : new Map<string, Sent>()
      const usage = yield* pendingUsage(batch.filter((r) => !known.has(sentKeyOf(r.message))))
      const firstOf = new Map<string, number>()
      const toInsert: Array<number> = []
      batch.forEach((r, i) => {
        const key = sentKeyOf(r.message)
        const prior = known.get(key)
        if (prior !== undefined) {
          results[i] = { _tag: "Duplicate", to: prior.to, outcome: prior.outcome }
          return
        }
        if (firstOf.has(key)) return
        if (isPending(r.message)) {
          const refused = charge(usage, r)
          if (refused !== undefined) {
            results[i] = refused
            return
          }
        }
        firstOf.set(key, i)
        toInsert.push(i)
      })
      if (toInsert.length > 0) {
        const ms = toInsert.map((i) => batch[i]!.message)
        const inserted = clocked
          ? yield* insertClocked(ms, (yield* Clock.currentTimeMillis) + MAX_AHEAD_MILLIS)
          : yield* insertPlain(ms)
        for (const j of inserted.busy) results[toInsert[j]!] = { _tag: "ConversationBusy" }
        const stored = new Map<string, { readonly id: string; readonly timestamp: number }>(inserted.rows.map((r) => [
          `${r.l2ps_uid}\u0000${r.from_key}\u0000${r.message_hash}`,
          { id: String(r.id), timestamp: Number(r.ts) }
        ]))
        const left = toInsert.filter((i) => results[i] === undefined)
        // A conflict here is a duplicate not checked before, or committed by another node since.
        const raced = stored.size === left.length
          ? new Map<string, Sent>()
          : yield* existing(left.map((i) => batch[i]!).filter((r) => !stored.has(sentKeyOf(r.message))))
        for (const i of left) {
          const key = sentKeyOf(batch[i]!.message)
          const row = stored.get(key)
          const other = raced.get(key)
          results[i] = row !== undefined
            ? { _tag: "Stored", ...row }
            : { _tag: "Duplicate", to: other?.to ?? "", outcome: other?.outcome ?? "queued" }
        }
      }
      // Later copies of a message within the batch are retries of the first.
      return batch.map((r, i): CommitResult => {
        const done = results[i]
        if (done !== undefined) return done
        const firstAt = firstOf.get(sentKeyOf(r.message))!
        const first = results[firstAt]!
        const firstReq = batch[firstAt]!
        return first._tag === "Stored"
          ? { _tag: "Duplicate", to: firstReq.message.to, outcome: firstReq.message.outcome }
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
    // whose predecessors fit, and the rows a first group of equal timestamps may need whatever their
    // sizes (a page holds at least one message and never ends inside such a group).
    const bounded = maxChars === undefined ? page : sql`
        SELECT * FROM (
          SELECT p.*, sum(length(p.encrypted::text) + ${HISTORY_ROW_OVERHEAD}) OVER w
            - (length(p.encrypted::text) + ${HISTORY_ROW_OVERHEAD}) AS chars_before, row_number() OVER w AS rn
          FROM (${page}) p
          WINDOW w AS (ORDER BY p.ts DESC, p.id DESC)) w
        WHERE w.rn <= ${SAME_MILLI_MAX + 1} OR w.chars_before <= ${maxChars}`
    return sql<MessageRow>`
      SELECT ${columns} FROM (${bounded}) m ${batchJoin}
      ORDER BY m.ts DESC, m.id DESC`.pipe(Effect.map((rows) => rows.map(toMessage)), Effect.mapError(fail("history")))
  }

  const senders: StorageShape["senders"] = (l2psUid, to, hashes) =>
    hashes.length === 0 ? Effect.succeed([]) : sql<{ message_hash: string; from_key: string }>`
      SELECT message_hash, from_key FROM l2ps_messages
      WHERE l2ps_uid = ${l2psUid} AND to_key = ${to} AND message_hash IN ${sql.in(hashes)} AND delivery_status = 'delivered'`.pipe(
      Effect.map((rows) => rows.map((r) => ({ messageHash: r.message_hash, from: r.from_key }))),
      Effect.mapError(fail("senders"))
    )

  const byHash: StorageShape["byHash"] = (l2psUid, from, messageHash) =>
    sql<MessageRow>`
      SELECT ${columns} FROM ${messages}
      WHERE m.message_hash = ${messageHash} AND m.l2ps_uid = ${l2psUid} AND m.from_key = ${from}`.pipe(
      Effect.map((rows) => (rows[0] === undefined ? undefined : toMessage(rows[0]))),
      Effect.mapError(fail("byHash"))
    )

  // Never handed over: expired, then deleted with every failed row that has left the mempool (the prover
  // claims what it took from there; a later sweep deletes it). Handed to a device that never acknowledged:
  // stays `sent`, stops waiting.
  const expirePending: StorageShape["expirePending"] = (olderThan) =>
    Effect.gen(function*() {
      const expired = yield* sql<{ id: string | number }>`
        UPDATE l2ps_messages SET delivery_status = 'failed'
        WHERE delivery_status = 'queued' AND ts < ${olderThan} RETURNING id`
      const deleted = yield* sql<{ id: string | number }>`
        DELETE FROM l2ps_messages m
        WHERE m.delivery_status = 'failed'
          AND NOT EXISTS (SELECT 1 FROM l2ps_mempool p WHERE p.l2ps_uid = m.l2ps_uid AND p.message_id = m.id)
          AND NOT EXISTS (SELECT 1 FROM l2ps_batch_messages bm WHERE bm.message_id = m.id AND bm.leaf IS NULL)
        RETURNING m.id`
      yield* sql`UPDATE l2ps_messages SET awaiting_ack = false WHERE awaiting_ack AND ts < ${olderThan}`
      return { expired: expired.length, deleted: deleted.length }
    }).pipe(sql.withTransaction, Effect.mapError(fail("expirePending")))

  const ping: StorageShape["ping"] = sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(fail("ping")))

  // The group commit, deliveries and acknowledgements run per message: no span on them.
  return Storage.of(spanned(
    "Storage",
    { commit, pending, waiting, markHanded, requeue, acknowledge, senders, history, byHash, expirePending, ping },
    ["pending", "waiting", "requeue", "history", "byHash", "expirePending"]
  ))
})

export const layer: Layer.Layer<Storage, never, SqlClient.SqlClient> = Layer.effect(Storage, make())

/** Storage for nodes sharing one database: timestamps from the conversations' clock rows. */
export const layerClustered: Layer.Layer<Storage, never, SqlClient.SqlClient> = Layer.effect(
  Storage,
  make({ conversationClocks: true })
)
