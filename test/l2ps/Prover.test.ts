/**
 * The prover hashes a draft's leaves a hundred at a time with the event loop's I/O in between: the
 * relay's sockets are read while a large batch is proven, instead of waiting for all of its hashes.
 */
import { describe, expect, test } from "bun:test"
import { Deferred, Effect, Fiber, Queue } from "effect"
import * as Crypto from "../../src/crypto/Crypto.ts"
import * as NodeKey from "../../src/crypto/NodeKey.ts"
import { leafHash, root } from "../../src/domain/Merkle.ts"
import type { Draft } from "../../src/l2ps/Batcher.ts"
import type { Batch, MempoolEntry, PipelineStoreShape } from "../../src/l2ps/PipelineStore.ts"
import * as Prover from "../../src/l2ps/Prover.ts"
import type { StorageError } from "../../src/storage/Storage.ts"

describe("Prover", () => {
  test("a batch of 1,000 is hashed in turns of the event loop, and its root covers every leaf in order", async () => {
    const entries: Array<MempoolEntry> = Array.from({ length: 1000 }, (_, i) => ({
      id: String(i + 1),
      l2psUid: "default",
      messageHash: `h${i}`,
      encrypted: { ciphertext: "x".repeat(300), nonce: `n${i}` },
      timestamp: 1_000 + i
    }))
    // Counts the turns of the event loop (setImmediate) while the prover works.
    let turns = 0
    let ticking = true
    const tick = () => {
      turns++
      if (ticking) setImmediate(tick)
    }
    let turnsAtSave = -1
    let saved: { root: string; leaves: ReadonlyArray<string> } | undefined
    const store = {
      lastBatch: () => Effect.succeed(undefined),
      saveBatch: (b: Omit<Batch, "id" | "status" | "blockNumber" | "blockHash">, _ids: ReadonlyArray<string>, leaves: ReadonlyArray<string>) =>
        Effect.sync(() => {
          turnsAtSave = turns
          saved = { root: b.root, leaves }
          return { ...b, id: "1", status: "batched", blockNumber: null, blockHash: null } as Batch
        })
    } as unknown as PipelineStoreShape
    await Effect.gen(function*() {
      const drafts = yield* Queue.bounded<Draft>(1)
      const proven = yield* Queue.bounded<Batch>(1)
      const key = NodeKey.fromSeed(new Uint8Array(32).fill(7))
      const fiber = yield* Effect.fork(Prover.run("default", Crypto.noble, key, store, drafts, proven))
      const done = yield* Deferred.make<void, StorageError>()
      setImmediate(tick)
      const before = turns
      yield* Queue.offer(drafts, { entries, saved: done })
      yield* Deferred.await(done)
      ticking = false
      yield* Queue.take(proven)
      yield* Fiber.interrupt(fiber)
      // Ten turns of a hundred leaves: the loop ran at least between each of them.
      expect(turnsAtSave - before).toBeGreaterThanOrEqual(9)
    }).pipe(Effect.runPromise)
    const leaves = entries.map(leafHash)
    expect(saved?.leaves).toEqual(leaves)
    expect(saved?.root).toBe(root(leaves))
  })
})
