import { leafHash, verifyInclusion } from "../l2ps/Merkle.ts"
import type { ProofResponsePayload, SerializedEncryptedMessage } from "./Wire.ts"

/** What a client knows of its own message: enough to recompute its leaf. */
export interface KnownMessage {
  readonly l2psUid: string
  readonly messageHash: string
  readonly encrypted: SerializedEncryptedMessage | Record<string, unknown>
  /** the server's timestamp (from `history`) */
  readonly timestamp: number
}

export interface ProofCheck {
  /** The path folds from the leaf to the batch root (and the leaf is the message's, when given). */
  readonly valid: boolean
  /** The batch is confirmed on L1 (final), and `valid`. */
  readonly confirmed: boolean
  /** `l2ps_pending` (not batched yet), `l2ps_batched` or `l2ps_confirmed`. */
  readonly status: string
  readonly reason?: string
  readonly root?: string
  readonly blockNumber?: number
  readonly l2psTxHash?: string | null
}

/**
 * Checks a `proof_response` offline (DECISIONS.md 13, RFC 6962 hashing): folding `path` from `leaf`
 * must give `batch.root`; with `message`, the leaf must also be the hash of that very message.
 */
export const verifyProof = (proof: ProofResponsePayload, message?: KnownMessage): ProofCheck => {
  const status = proof.l2psStatus ?? (proof.batch === null ? "l2ps_pending" : proof.batch.status === "confirmed" ? "l2ps_confirmed" : "l2ps_batched")
  if (message !== undefined) {
    if (message.messageHash !== proof.messageHash) return { valid: false, confirmed: false, status, reason: "the proof is for another message" }
    if (leafHash(message) !== proof.leaf) return { valid: false, confirmed: false, status, reason: "the leaf is not this message's hash" }
  }
  const b = proof.batch
  if (b === null) return { valid: false, confirmed: false, status, reason: "not batched yet" }
  const anchored = {
    root: b.root,
    l2psTxHash: b.l2psTxHash,
    ...(b.blockNumber === undefined ? {} : { blockNumber: b.blockNumber })
  }
  if (!verifyInclusion(proof.leaf, proof.path, b.root)) {
    return { valid: false, confirmed: false, status, reason: "the path does not lead to the batch root", ...anchored }
  }
  return { valid: true, confirmed: b.status === "confirmed", status, ...anchored }
}
