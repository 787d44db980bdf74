import type { DeliveryStatus, L2psStatus, StoredMessage } from "./Storage.ts"

export interface MessageRow {
  readonly id: string | number
  readonly l2ps_uid: string
  readonly from_key: string
  readonly to_key: string
  readonly message_hash: string
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
  encrypted: typeof r.encrypted === "string" ? JSON.parse(r.encrypted) : r.encrypted,
  timestamp: Number(r.ts),
  deliveryStatus: r.delivery_status,
  l2psStatus: r.l2ps_status,
  l2psTxHash: r.l2ps_tx_hash
})

export const COLUMNS = "id, l2ps_uid, from_key, to_key, message_hash, encrypted, ts, delivery_status, l2ps_status, l2ps_tx_hash"

