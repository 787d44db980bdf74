import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import { canonicalJson, leafHash, verifyInclusion } from "../domain/MerkleVerify.ts"
import type { BatchHeader, ProofResponsePayload, SerializedEncryptedMessage } from "./Wire.ts"

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
  /**
   * The node key whose ML-DSA signature of the batch header (root included) was checked; absent when
   * the batch carries no signature that verifies. With a pinned key, `valid` requires it to be that key.
   */
  readonly signer?: string
}

export interface ProofTrust {
  /** hex ML-DSA-65 public key of the node the client trusts (pinned on first use or given by the app) */
  readonly nodeKey: string
}

const HEX = /^[0-9a-f]+$/i

/**
 * Who signed the batch: the header's hash recomputed as the node's prover computes it
 * (`sha256(canonicalJson({l2psUid, seq, root, size, prevBatchHash, createdAt}))`) must be `batchHash`,
 * and `signature` must verify under `signer`. The reason when not.
 */
export const batchSigner = (b: BatchHeader): { readonly signer: string } | { readonly reason: string } => {
  if (b.signature === undefined || b.signer === undefined || b.createdAt === undefined || b.batchHash === undefined || b.seq === undefined) {
    return { reason: "the node sent no batch signature" }
  }
  if (!HEX.test(b.signature) || !HEX.test(b.signer) || !HEX.test(b.batchHash)) return { reason: "the batch signature is not hex" }
  const header = { l2psUid: b.l2psUid, seq: b.seq, root: b.root, size: b.size, prevBatchHash: b.prevBatchHash, createdAt: b.createdAt }
  if (bytesToHex(sha256(new TextEncoder().encode(canonicalJson(header)))) !== b.batchHash.toLowerCase()) {
    return { reason: "the batch header does not hash to its batchHash" }
  }
  let ok = false
  try {
    ok = ml_dsa65.verify(hexToBytes(b.signature), hexToBytes(b.batchHash.toLowerCase()), hexToBytes(b.signer))
  } catch {
    ok = false
  }
  return ok ? { signer: b.signer.toLowerCase() } : { reason: "the batch signature does not verify" }
}

/**
 * Checks a `proof_response` offline (docs/PROTOCOL.md, inclusion proofs, RFC 6962 hashing): folding `path` from `leaf`
 * must give `batch.root`; with `message`, the leaf must also be the hash of that very message; with
 * `trust`, the root must be in a batch header signed by `trust.nodeKey` (the root and status a node
 * reports are otherwise its own word).
 */
export const verifyProof = (proof: ProofResponsePayload, message?: KnownMessage, trust?: ProofTrust): ProofCheck => {
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
  const signed = batchSigner(b)
  const signer = "signer" in signed ? { signer: signed.signer } : {}
  if (trust !== undefined) {
    if ("reason" in signed) return { valid: false, confirmed: false, status, reason: signed.reason, ...anchored }
    if (signed.signer !== trust.nodeKey.toLowerCase()) {
      return { valid: false, confirmed: false, status, reason: "the batch is signed by another node key than the pinned one", ...anchored, ...signer }
    }
  }
  return { valid: true, confirmed: b.status === "confirmed", status, ...anchored, ...signer }
}
