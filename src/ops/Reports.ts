import type { Head } from "../l1/L1.ts"
import { leafHash, leafIn, levels, pathIn, type PathStep } from "../domain/Merkle.ts"
import type { Batch } from "../l2ps/PipelineStore.ts"
import { statusOf, type StoredMessage } from "../storage/Storage.ts"

/** A batch as the status page and `admin batch` show it; the signature only in `BatchDetail`. */
export interface BatchSummary {
  readonly l2psUid: string
  readonly seq: number
  readonly size: number
  readonly root: string
  readonly l2psTxHash: string
  readonly status: Batch["status"]
  readonly blockNumber: number | null
  readonly createdAt: number
}

export interface BatchDetail extends BatchSummary {
  readonly prevBatchHash: string
  readonly batchHash: string
  readonly blockHash: string | null
  readonly signature: string
  readonly signer: string
  /** The batch's Merkle leaves (hex), in order. */
  readonly leaves: ReadonlyArray<string>
}

/** A stored message as `admin message` shows it: never its payload, only what anchors it. */
export interface MessageReport {
  readonly l2psUid: string
  readonly from: string
  readonly to: string
  readonly messageHash: string
  readonly timestamp: number
  readonly status: string
  readonly deliveryStatus: StoredMessage["deliveryStatus"]
  readonly l2psStatus: StoredMessage["l2psStatus"]
  readonly batch: BatchSummary | null
  /** The inclusion proof: folding `path` from `leaf` gives `batch.root` (docs/PROTOCOL.md). */
  readonly proof: { readonly leaf: string; readonly path: ReadonlyArray<PathStep> } | null
}

export interface L1Report {
  readonly name: string
  readonly reachable: boolean
  readonly head: Head | null
}

export const summaryOf = (b: Batch): BatchSummary => ({
  l2psUid: b.l2psUid,
  seq: b.seq,
  size: b.size,
  root: b.root,
  l2psTxHash: b.l2psTxHash,
  status: b.status,
  blockNumber: b.blockNumber,
  createdAt: b.createdAt
})

export const detailOf = (b: Batch, signer: string, leaves: ReadonlyArray<string>): BatchDetail => ({
  ...summaryOf(b),
  prevBatchHash: b.prevBatchHash,
  batchHash: b.batchHash,
  blockHash: b.blockHash,
  signature: b.signature,
  signer,
  leaves
})

export const messageReport = (
  m: StoredMessage,
  batch: Batch | undefined,
  index: number,
  leaves: ReadonlyArray<string>
): MessageReport => {
  const base = {
    l2psUid: m.l2psUid,
    from: m.from,
    to: m.to,
    messageHash: m.messageHash,
    timestamp: m.timestamp,
    status: statusOf(m),
    deliveryStatus: m.deliveryStatus,
    l2psStatus: m.l2psStatus
  }
  if (batch === undefined || index < 0 || index >= leaves.length) {
    return { ...base, batch: null, proof: { leaf: leafHash({ ...m, encrypted: JSON.parse(m.encryptedJson) }), path: [] } }
  }
  const tree = levels(leaves)
  return { ...base, batch: summaryOf(batch), proof: { leaf: leafIn(tree, index), path: pathIn(tree, index) } }
}
