import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { CryptoShape } from "../crypto/Crypto.ts"
import type { NodeKeyShape } from "../crypto/NodeKey.ts"
import type { BatchAnchor, L1Transaction } from "../l1/L1.ts"
import type { Draft } from "./Batcher.ts"
import { canonicalJson, leafHash, root } from "../domain/Merkle.ts"
import type { Fence } from "../internal/Ownership.ts"
import { ioTurn } from "../internal/ioTurn.ts"
import type { Batch, MempoolEntry, PipelineStoreShape } from "./PipelineStore.ts"

export const GENESIS_BATCH_HASH = "0".repeat(64)

const sha256hex = (crypto: CryptoShape, text: string) =>
  Buffer.from(crypto.sha256(new TextEncoder().encode(text))).toString("hex")

/** The L1 transaction anchoring a batch; its hash is the messages' `l2psTxHash`. */
export const anchorOf = (crypto: CryptoShape, b: Omit<BatchAnchor, "type">): L1Transaction => {
  const payload: BatchAnchor = { type: "l2psBatch", ...b }
  return { hash: sha256hex(crypto, canonicalJson(payload)), payload }
}

export const anchorOfBatch = (crypto: CryptoShape, key: NodeKeyShape, b: Batch): L1Transaction =>
  anchorOf(crypto, {
    l2psUid: b.l2psUid,
    seq: b.seq,
    root: b.root,
    size: b.size,
    prevBatchHash: b.prevBatchHash,
    batchHash: b.batchHash,
    signature: b.signature,
    signer: key.publicKeyHex
  })

/** Leaves hashed between two reads of the sockets. */
const LEAVES_PER_TURN = 100

/**
 * The draft's leaf hashes, a hundred at a time with the event loop's I/O in between: a batch of 500
 * hashed at once held the relay for 2.5-15 ms, which every acknowledgement due meanwhile waited for.
 */
const leavesOf = (entries: ReadonlyArray<MempoolEntry>) =>
  Effect.suspend(() => {
    const leaves: Array<string> = []
    const step: Effect.Effect<Array<string>> = Effect.suspend(() => {
      const end = Math.min(entries.length, leaves.length + LEAVES_PER_TURN)
      for (let i = leaves.length; i < end; i++) leaves.push(leafHash(entries[i]!))
      return leaves.length === entries.length ? Effect.succeed(leaves) : Effect.zipRight(ioTurn, step)
    })
    return step
  })

/**
 * Merkle root over the draft's leaves, hash-chained to the network's previous batch and signed with the
 * node's ML-DSA-65 key; the batch and its messages' new status are stored in one transaction.
 *
 * The previous batch is read from storage once, then remembered: each is the one this prover saved.
 * Another writer's batch in between makes the save fail on its sequence number, and the prover is
 * restarted (by its supervisor) with nothing remembered.
 */
export const run = (
  uid: string,
  crypto: CryptoShape,
  key: NodeKeyShape,
  store: PipelineStoreShape,
  drafts: Queue.Dequeue<Draft>,
  proven: Queue.Enqueue<Batch>,
  fence?: Fence
) =>
  Effect.suspend(() => {
    let known: { readonly last: Batch | undefined } | undefined
    const proveNext = Effect.gen(function*() {
      const { entries, saved } = yield* Queue.take(drafts)
      // tapErrorCause: a defect (a COMMIT lost with the connection dies in @effect/sql) must release the
      // batcher too, or it waits for this draft forever while the restarted prover waits for the next one.
      const batch = yield* Effect.gen(function*() {
        const last = known === undefined ? yield* store.lastBatch(uid) : known.last
        const leaves = yield* leavesOf(entries)
        const createdAt = yield* Clock.currentTimeMillis
        const header = {
          l2psUid: uid,
          seq: (last?.seq ?? 0) + 1,
          root: root(leaves),
          size: entries.length,
          prevBatchHash: last?.batchHash ?? GENESIS_BATCH_HASH,
          createdAt
        }
        const batchHash = sha256hex(crypto, canonicalJson(header))
        const signature = Buffer.from(key.sign(Buffer.from(batchHash, "hex"))).toString("hex")
        const { createdAt: _, ...anchored } = header
        const tx = anchorOf(crypto, { ...anchored, batchHash, signature, signer: key.publicKeyHex })
        return yield* store.saveBatch({ ...header, batchHash, signature, l2psTxHash: tx.hash }, entries.map((e) => e.id), leaves, fence)
      }).pipe(
        Effect.withSpan("Prover.prove", { attributes: { l2psUid: uid, size: entries.length } }),
        Effect.tapErrorCause((cause) => Deferred.failCause(saved, cause))
      )
      known = { last: batch }
      yield* Deferred.succeed(saved, undefined)
      yield* Queue.offer(proven, batch)
    })
    return Effect.forever(proveNext)
  })
