import type { DeliveryStatus, L2psStatus, StoredMessage } from "./Storage.ts"

export interface MessageRow {
  readonly id: string | number
  readonly l2ps_uid: string
  readonly from_key: string
  readonly to_key: string
  readonly message_hash: string
  /** `encrypted::text`; a client that parses jsonb anyway gives the value. */
  readonly encrypted: unknown
  readonly ts: string | number
  readonly delivery_status: DeliveryStatus
  readonly l2ps_status: L2psStatus
  readonly l2ps_tx_hash: string | null
}

export const toMessage = (r: MessageRow): StoredMessage => ({
  id: String(r.id),
  l2psUid: r.l2ps_uid,
  from: r.from_key,
  to: r.to_key,
  messageHash: r.message_hash,
  encryptedJson: typeof r.encrypted === "string" ? r.encrypted : JSON.stringify(r.encrypted),
  timestamp: Number(r.ts),
  deliveryStatus: r.delivery_status,
  l2psStatus: r.l2ps_status,
  l2psTxHash: r.l2ps_tx_hash
})

/** A message `m` with its batch `b` (migration 0007): its L2PS status and transaction hash are its batch's. */
export const BATCH_JOIN =
  "LEFT JOIN l2ps_batch_messages bm ON bm.message_id = m.id LEFT JOIN l2ps_batches b ON b.id = bm.batch_id"

/** The L2PS status of `m` over `BATCH_JOIN`: pending until its batch is stored. */
export const L2PS_STATUS =
  "CASE WHEN b.status = 'confirmed' THEN 'l2ps_confirmed' WHEN b.id IS NOT NULL THEN 'l2ps_batched' ELSE 'l2ps_pending' END"

/** Messages with their batch, as `m` and `b`. A page is taken before the join (`(…) m BATCH_JOIN`): a join
 * over the whole filter would read every message of a conversation before its LIMIT. */
export const MESSAGES = `l2ps_messages m ${BATCH_JOIN}`

/** A `MessageRow` from `MESSAGES`. */
export const COLUMNS = "m.id, m.l2ps_uid, m.from_key, m.to_key, m.message_hash, m.encrypted::text AS encrypted, m.ts, m.delivery_status, " +
  `${L2PS_STATUS} AS l2ps_status, b.l2ps_tx_hash`

