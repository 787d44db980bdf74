import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { COLUMNS, MESSAGES, type MessageRow, toMessage } from "../storage/MessageRow.ts"
import { StorageError } from "../storage/Storage.ts"
import { leafHash } from "../domain/Merkle.ts"
import { type Batch, type BatchStatus, type InclusionQuery, type MempoolEntry, PipelineStore, type PipelineStoreShape } from "./PipelineStore.ts"
import { spanned } from "../internal/spanned.ts"

interface BatchRow {
  readonly id: string | number
  readonly l2ps_uid: string
  readonly seq: number | string
  readonly root: string
  readonly size: number | string
  readonly prev_batch_hash: string
  readonly batch_hash: string
  readonly signature: string
  readonly l2ps_tx_hash: string
  readonly status: BatchStatus
  readonly block_number: number | string | null
  readonly block_hash: string | null
  readonly created_at: number | string
}

const toBatch = (r: BatchRow): Batch => ({
  id: String(r.id),
  l2psUid: r.l2ps_uid,
  seq: Number(r.seq),
  root: r.root,
  size: Number(r.size),
  prevBatchHash: r.prev_batch_hash,
  batchHash: r.batch_hash,
  signature: r.signature,
  l2psTxHash: r.l2ps_tx_hash,
  status: r.status,
  blockNumber: r.block_number === null ? null : Number(r.block_number),
  blockHash: r.block_hash,
  createdAt: Number(r.created_at)
})

interface EntryRow {
  readonly id: string | number
  readonly l2ps_uid: string
  readonly message_hash: string
  readonly encrypted: unknown
  readonly ts: string | number
}

const toEntry = (r: EntryRow): MempoolEntry => ({
  id: String(r.id),
  l2psUid: r.l2ps_uid,
  messageHash: r.message_hash,
  encrypted: typeof r.encrypted === "string" ? JSON.parse(r.encrypted) : r.encrypted,
  timestamp: Number(r.ts)
})

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (operation: string) => (cause: unknown) => new StorageError({ operation, cause })
  // Ids start at 1: 0 is "from the start". The reads are functions (migration 0007).
  const after = (afterId: string | undefined) => (afterId === undefined ? 0 : Number(afterId))

  /** The message `q` names, among those its participant sent or received in the network. */
  const ofParticipant = (q: InclusionQuery) =>
    sql`m.message_hash = ${q.messageHash} AND m.l2ps_uid = ${q.l2psUid}
      AND (m.from_key = ${q.participant} OR m.to_key = ${q.participant})
      AND ${q.from === undefined ? sql`TRUE` : sql`m.from_key = ${q.from}`}`
  const batchLeaves = (batchId: number) =>
    Effect.gen(function*() {
      const members = yield* sql<{ leaf: string | null }>`
        SELECT leaf FROM l2ps_batch_messages WHERE batch_id = ${batchId} ORDER BY message_id`
      if (members.every((r) => r.leaf !== null)) return members.map((r) => r.leaf!)
      // A batch stored before leaves were kept (migration 0007): from its payloads.
      const entries = yield* sql<EntryRow>`
        SELECT m.id, m.l2ps_uid, m.message_hash, m.encrypted, m.ts
        FROM l2ps_batch_messages bm JOIN l2ps_messages m ON m.id = bm.message_id
        WHERE bm.batch_id = ${batchId} ORDER BY m.id`
      return entries.map(toEntry).map(leafHash)
    })

  /** A message row with its batch and its position among the batch's members. */
  const placed = (m: MessageRow & { batch_id: string | number | null }) =>
    Effect.gen(function*() {
      const message = toMessage(m)
      if (m.batch_id === null) return { message, batch: undefined, index: -1 }
      const batchId = Number(m.batch_id)
      const [b] = yield* sql<BatchRow>`SELECT * FROM l2ps_batches WHERE id = ${batchId}`
      // Along l2ps_batch_messages_batch (batch_id, message_id): the members before it.
      const [before] = yield* sql<{ n: string | number }>`
        SELECT count(*) AS n FROM l2ps_batch_messages WHERE batch_id = ${batchId} AND message_id < ${message.id}`
      return { message, batch: b === undefined ? undefined : toBatch(b), index: Number(before?.n ?? 0) }
    })

  const placeOf: PipelineStoreShape["placeOf"] = (q) =>
    Effect.gen(function*() {
      const [m] = yield* sql<MessageRow & { batch_id: string | number | null }>`
        SELECT ${sql.literal(COLUMNS)}, bm.batch_id FROM ${sql.literal(MESSAGES)}
        WHERE ${ofParticipant(q)}
        ORDER BY m.from_key = ${q.participant} DESC, m.id
        LIMIT 1`
      return m === undefined ? undefined : yield* placed(m)
    }).pipe(Effect.mapError(fail("placeOf")))

  const store: PipelineStoreShape = {
    // EXISTS is planned for its first row: along the index, whatever the statistics.
    anyPending: (uid) =>
      sql<{ found: boolean }>`
        SELECT EXISTS (SELECT 1 FROM l2ps_mempool WHERE l2ps_uid = ${uid}) AS found`.pipe(
        Effect.map((rows) => rows[0]?.found === true),
        Effect.mapError(fail("anyPending"))
      ),
    countPending: (uid, afterId, max) =>
      sql<{ n: number | string }>`SELECT l2ps_mempool_count(${uid}::text, ${after(afterId)}::int8, ${max}::int4) AS n`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        Effect.mapError(fail("countPending"))
      ),
    takePending: (uid, afterId, max) =>
      sql<EntryRow>`SELECT * FROM l2ps_mempool_take(${uid}::text, ${after(afterId)}::int8, ${max}::int4)`.pipe(
        Effect.map((rows) => rows.map(toEntry)),
        Effect.mapError(fail("takePending"))
      ),
    lastBatch: (uid) =>
      sql<BatchRow>`SELECT * FROM l2ps_batches WHERE l2ps_uid = ${uid} ORDER BY seq DESC LIMIT 1`.pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toBatch(rows[0]))),
        Effect.mapError(fail("lastBatch"))
      ),
    saveBatch: (b, messageIds, leaves, fence) =>
      Effect.gen(function*() {
        if (fence !== undefined) {
          // FOR SHARE: a takeover's epoch bump waits for this commit, or this check sees the new epoch.
          const [term] = yield* sql<{ epoch: string | number }>`
            SELECT epoch FROM cluster_owners WHERE name = ${fence.name} FOR SHARE`
          if (term === undefined || Number(term.epoch) !== fence.epoch) {
            return yield* Effect.fail(
              new Error(`batch ${b.l2psUid}#${b.seq}: fenced out (epoch ${fence.epoch}, now ${term?.epoch ?? "none"})`)
            )
          }
        }
        const [row] = yield* sql<BatchRow>`
          INSERT INTO l2ps_batches ${
          sql.insert({
            l2ps_uid: b.l2psUid,
            seq: b.seq,
            root: b.root,
            size: b.size,
            prev_batch_hash: b.prevBatchHash,
            batch_hash: b.batchHash,
            signature: b.signature,
            l2ps_tx_hash: b.l2psTxHash,
            status: "batched",
            created_at: b.createdAt
          })
        } RETURNING *`
        // Out of the mempool, into the batch; a message's own row is not written again.
        const claimed = yield* sql<{ message_id: string | number }>`
          WITH taken AS (
            DELETE FROM l2ps_mempool
            WHERE l2ps_uid = ${b.l2psUid} AND message_id = ANY(${messageIds.map(Number)}::int8[])
            RETURNING message_id)
          INSERT INTO l2ps_batch_messages (message_id, batch_id, leaf)
          SELECT taken.message_id, ${Number(row!.id)}, member.leaf
          FROM taken JOIN unnest(${messageIds.map(Number)}::int8[], ${leaves}::text[]) AS member(id, leaf)
            ON member.id = taken.message_id
          RETURNING message_id`
        // Anything else means another writer batched them: refuse rather than anchor twice.
        if (claimed.length !== messageIds.length) {
          return yield* Effect.fail(new Error(`batch ${b.l2psUid}#${b.seq}: ${messageIds.length - claimed.length} messages already batched`))
        }
        return toBatch(row!)
      }).pipe(sql.withTransaction, Effect.mapError(fail("saveBatch"))),
    batches: (uid, status) =>
      sql<BatchRow>`SELECT * FROM l2ps_batches WHERE l2ps_uid = ${uid} AND status = ${status} ORDER BY seq`.pipe(
        Effect.map((rows) => rows.map(toBatch)),
        Effect.mapError(fail("batches"))
      ),
    markSubmitted: (id) =>
      sql`UPDATE l2ps_batches SET status = 'submitted' WHERE id = ${Number(id)} AND status = 'batched'`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("markSubmitted"))
      ),
    markIncluded: (id, blockNumber, blockHash) =>
      sql`UPDATE l2ps_batches SET block_number = ${blockNumber}, block_hash = ${blockHash} WHERE id = ${Number(id)}`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("markIncluded"))
      ),
    // Its messages are confirmed with it (`MESSAGES`).
    confirm: (id) =>
      sql`UPDATE l2ps_batches SET status = 'confirmed' WHERE id = ${Number(id)}`.pipe(
        Effect.asVoid,
        Effect.mapError(fail("confirm"))
      ),
    stats: Effect.gen(function*() {
      // The oldest pending message is the one with the lowest id: no join over the whole mempool.
      const mempool = yield* sql<{ l2ps_uid: string; pending: number | string; oldest: number | string | null }>`
        SELECT p.l2ps_uid, count(*) AS pending, (SELECT m.ts FROM l2ps_messages m WHERE m.id = min(p.message_id)) AS oldest
        FROM l2ps_mempool p GROUP BY p.l2ps_uid`
      const waiting = yield* sql<{ l2ps_uid: string; queued: number | string }>`
        SELECT l2ps_uid, count(*) AS queued FROM l2ps_messages
        WHERE delivery_status = 'queued' OR awaiting_ack
        GROUP BY l2ps_uid`
      const batches = yield* sql<{ l2ps_uid: string; n: number | string; oldest: number | string | null }>`
        SELECT l2ps_uid, count(*) AS n, min(created_at) AS oldest FROM l2ps_batches
        WHERE status <> 'confirmed' GROUP BY l2ps_uid`
      const uids = new Set([...mempool, ...waiting, ...batches].map((r) => r.l2ps_uid))
      return [...uids].sort().map((uid) => {
        const m = mempool.find((x) => x.l2ps_uid === uid)
        const b = batches.find((x) => x.l2ps_uid === uid)
        return {
          l2psUid: uid,
          pending: Number(m?.pending ?? 0),
          oldestPending: m?.oldest == null ? null : Number(m.oldest),
          queued: Number(waiting.find((x) => x.l2ps_uid === uid)?.queued ?? 0),
          unconfirmedBatches: Number(b?.n ?? 0),
          oldestUnconfirmed: b?.oldest == null ? null : Number(b.oldest)
        }
      })
    }).pipe(Effect.mapError(fail("stats"))),
    prune: (olderThan, cursor, chunk) =>
      Effect.gen(function*() {
        const [batch] = yield* sql<{ id: string | number; created_at: string | number }>`
          SELECT id, created_at FROM l2ps_batches
          WHERE status = 'confirmed' AND NOT pruned AND created_at < ${olderThan}::int8
            AND ${cursor === undefined ? sql`true` : cursor.past
              ? sql`(created_at, id) > (${cursor.createdAt}::int8, ${Number(cursor.id)}::int8)`
              : sql`(created_at, id) >= (${cursor.createdAt}::int8, ${Number(cursor.id)}::int8)`}
          ORDER BY created_at, id LIMIT 1`
        if (batch === undefined) return { messages: 0, batches: 0, next: undefined }
        const id = Number(batch.id)
        const at = { createdAt: Number(batch.created_at), id: String(batch.id) }
        // Members without a leaf (batches older than the leaves) prove the others from their payloads.
        const [legacy] = yield* sql`SELECT 1 FROM l2ps_batch_messages WHERE batch_id = ${id} AND leaf IS NULL LIMIT 1`
        if (legacy !== undefined) return { messages: 0, batches: 0, next: { ...at, past: true } }
        // Each statement commits on its own: no lock is held longer than one chunk's delete.
        const deleted = yield* sql<{ id: string | number }>`
          DELETE FROM l2ps_messages WHERE id IN (
            SELECT bm.message_id FROM l2ps_batch_messages bm JOIN l2ps_messages m ON m.id = bm.message_id
            WHERE bm.batch_id = ${id} AND m.delivery_status <> 'queued' AND NOT m.awaiting_ack
            ORDER BY bm.message_id LIMIT ${chunk})
          RETURNING id`
        if (deleted.length === chunk) return { messages: deleted.length, batches: 0, next: { ...at, past: false } }
        const [waiting] = yield* sql`
          SELECT 1 FROM l2ps_batch_messages bm JOIN l2ps_messages m ON m.id = bm.message_id WHERE bm.batch_id = ${id} LIMIT 1`
        if (waiting !== undefined) return { messages: deleted.length, batches: 0, next: { ...at, past: true } }
        // The leaves go with the last message: no proof is left to compute from them.
        yield* Effect.gen(function*() {
          yield* sql`DELETE FROM l2ps_batch_messages WHERE batch_id = ${id}`
          yield* sql`UPDATE l2ps_batches SET pruned = true WHERE id = ${id}`
        }).pipe(sql.withTransaction)
        return { messages: deleted.length, batches: 1, next: { ...at, past: true } }
      }).pipe(Effect.mapError(fail("prune"))),
    placeOf,
    recentBatches: (uid, max) =>
      sql<BatchRow>`SELECT * FROM l2ps_batches WHERE l2ps_uid = ${uid} ORDER BY seq DESC LIMIT ${max}`.pipe(
        Effect.map((rows) => rows.map(toBatch)),
        Effect.mapError(fail("recentBatches"))
      ),
    batchAt: (uid, seq) =>
      sql<BatchRow>`SELECT * FROM l2ps_batches WHERE l2ps_uid = ${uid} AND seq = ${seq}`.pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toBatch(rows[0]))),
        Effect.mapError(fail("batchAt"))
      ),
    // Along l2ps_messages_sender_hash (message_hash, l2ps_uid, from_key).
    messagesByHash: (messageHash, max) =>
      Effect.gen(function*() {
        const rows = yield* sql<MessageRow & { batch_id: string | number | null }>`
          SELECT ${sql.literal(COLUMNS)}, bm.batch_id FROM ${sql.literal(MESSAGES)}
          WHERE m.message_hash = ${messageHash} ORDER BY m.id LIMIT ${max}`
        return yield* Effect.forEach(rows, placed)
      }).pipe(Effect.mapError(fail("messagesByHash"))),
    batchLeaves: (batchId) => batchLeaves(Number(batchId)).pipe(Effect.mapError(fail("batchLeaves"))),
    inclusionOf: (q) =>
      Effect.gen(function*() {
        const place = yield* placeOf(q)
        if (place === undefined) return undefined
        const leaves = place.batch === undefined
          ? []
          : yield* batchLeaves(Number(place.batch.id)).pipe(Effect.mapError(fail("inclusionOf")))
        return { ...place, leaves }
      })
  }
  return spanned("PipelineStore", store, [
    "anyPending",
    "countPending",
    "takePending",
    "lastBatch",
    "saveBatch",
    "batches",
    "markSubmitted",
    "markIncluded",
    "confirm",
    "prune",
    "placeOf",
    "recentBatches",
    "batchAt",
    "messagesByHash",
    "batchLeaves",
    "inclusionOf"
  ])
})

export const layer: Layer.Layer<PipelineStore, never, SqlClient.SqlClient> = Layer.effect(PipelineStore, make)
