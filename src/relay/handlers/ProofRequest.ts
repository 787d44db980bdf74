import * as Effect from "effect/Effect"
import { refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, payloadOf, ProofRequestPayload } from "../../domain/Frames.ts"
import { normalizeKey } from "../../domain/Keys.ts"
import { L2psUid, MessageHash } from "../../domain/Ids.ts"
import { leafHash, leafIn, levels, pathIn } from "../../domain/Merkle.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import { ProofCache } from "../ProofCache.ts"
import { readCost } from "../ReadBudget.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

const decode = payloadOf(ProofRequestPayload, "Missing messageHash")

/** Batches whose trees are kept: a batch of 500 is ~32 KB of hashes. */
const CACHED_BATCHES = 64

/**
 * The Merkle path of a message to its batch root, with the batch header and its L1 status. Only the
 * sender and the recipient may ask; anyone else is told the message is not found, as for an unknown hash.
 * Charged to the reader's budget: one row, and the batch's leaves when its tree is not cached.
 * The header comes with what its ML-DSA signature covers (`createdAt`, so the client can recompute
 * `batchHash`), the signature and the node's public key (`signer`): a client that pinned the node's key
 * then trusts the root only as far as that key signed it (SECURITY.md 15).
 */
export const proofRequest = (deps: RelayDeps) => {
  const store = deps.pipeline
  const trees = new ProofCache<ReturnType<typeof levels>>(CACHED_BATCHES)
  return Effect.fn("Relay.proofRequest")(function*(session: ConnectionContext, frame: Envelope) {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before requesting proofs")
    const { from, messageHash } = yield* decode(frame.payload)
    const reader = { l2psUid: reg.l2psUid, key: reg.key, address: session.remoteAddress }
    if (!(yield* deps.readBudget.allow(reader))) return yield* refuse("RATE_LIMITED", "Too many reads")
    const found = yield* store.placeOf({
      l2psUid: reg.l2psUid,
      participant: reg.key,
      messageHash,
      from: from === undefined ? undefined : normalizeKey(from)
    })
    const m = found?.message
    if (found === undefined || m === undefined || m.l2psUid !== reg.l2psUid || (m.from !== reg.key && m.to !== reg.key)) {
      yield* deps.readBudget.charge(reader, readCost(1, 0))
      return yield* refuse("PEER_NOT_FOUND", "Message not found")
    }
    const b = found.batch
    if (b === undefined) {
      yield* deps.readBudget.charge(reader, readCost(1, 0))
      const leaf = leafHash({ ...m, encrypted: JSON.parse(m.encryptedJson) })
      return yield* session.reply(
        "proof_response",
        encodePayload("proof_response", { messageHash: MessageHash.make(messageHash), leaf, batch: null, path: [], l2psStatus: m.l2psStatus }),
        frame.requestId
      )
    }
    let tree = trees.get(b.id)
    if (tree === undefined) {
      const leaves = yield* store.batchLeaves(b.id)
      tree = levels(leaves)
      trees.set(b.id, tree)
      yield* deps.readBudget.charge(reader, readCost(1 + leaves.length, 0))
    } else {
      yield* deps.readBudget.charge(reader, readCost(1, 0))
    }
    yield* session.reply("proof_response", encodePayload("proof_response", {
      messageHash: MessageHash.make(messageHash),
      leaf: leafIn(tree, found.index),
      l2psStatus: m.l2psStatus,
      batch: {
        id: b.id,
        l2psUid: L2psUid.make(b.l2psUid),
        seq: b.seq,
        root: b.root,
        size: b.size,
        prevBatchHash: b.prevBatchHash,
        batchHash: b.batchHash,
        l2psTxHash: b.l2psTxHash,
        status: b.status,
        createdAt: b.createdAt,
        signature: b.signature,
        signer: deps.nodeKey,
        ...(b.blockNumber === null ? {} : { blockNumber: b.blockNumber }),
        ...(b.blockNumber === null || b.blockHash === null ? {} : { blockHash: b.blockHash })
      },
      path: pathIn(tree, found.index)
    }), frame.requestId)
  })
}
