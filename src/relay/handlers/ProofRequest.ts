import * as Effect from "effect/Effect"
import { refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, payloadOf, ProofRequestPayload } from "../../domain/Frames.ts"
import { normalizeKey } from "../../domain/Keys.ts"
import { leafHash, path } from "../../l2ps/Merkle.ts"
import type { PipelineStoreShape } from "../../l2ps/PipelineStore.ts"
import type { SessionState } from "../SessionState.ts"

const decode = payloadOf(ProofRequestPayload, "Missing messageHash")

/**
 * The Merkle path of a message to its batch root, with the batch header and its L1 status. Only the
 * sender and the recipient may ask; anyone else is told the message is not found, as for an unknown hash.
 * The header comes with what its ML-DSA signature covers (`createdAt`, so the client can recompute
 * `batchHash`), the signature and the node's public key (`signer`): a client that pinned the node's key
 * then trusts the root only as far as that key signed it (SECURITY.md 15).
 */
export const proofRequest = (store: PipelineStoreShape, signer: string) => (session: SessionState, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before requesting proofs")
    const { from, messageHash } = yield* decode(frame.payload)
    const found = yield* store.inclusionOf({
      l2psUid: reg.l2psUid,
      participant: reg.key,
      messageHash,
      from: from === undefined ? undefined : normalizeKey(from)
    })
    const m = found?.message
    if (found === undefined || m === undefined || m.l2psUid !== reg.l2psUid || (m.from !== reg.key && m.to !== reg.key)) {
      return yield* refuse("PEER_NOT_FOUND", "Message not found")
    }
    const b = found.batch
    // A batched message's leaf is stored with the batch; an unbatched one's is computed here.
    const leaf = found.leaves[found.index] ?? leafHash({ ...m, encrypted: JSON.parse(m.encryptedJson) })
    if (b === undefined) {
      return yield* session.reply("proof_response", { messageHash, leaf, batch: null, path: [], l2psStatus: m.l2psStatus }, frame.requestId)
    }
    yield* session.reply("proof_response", {
      messageHash,
      leaf,
      l2psStatus: m.l2psStatus,
      batch: {
        id: b.id,
        l2psUid: b.l2psUid,
        seq: b.seq,
        root: b.root,
        size: b.size,
        prevBatchHash: b.prevBatchHash,
        batchHash: b.batchHash,
        l2psTxHash: b.l2psTxHash,
        status: b.status,
        createdAt: b.createdAt,
        signature: b.signature,
        signer,
        ...(b.blockNumber === null ? {} : { blockNumber: b.blockNumber, blockHash: b.blockHash })
      },
      path: path(found.leaves, found.index)
    }, frame.requestId)
  })
