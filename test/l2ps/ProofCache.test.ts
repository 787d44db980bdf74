/** Finding 8: proof paths are read from a batch's cached Merkle levels, kept for the most recent batches. */
import { describe, expect, test } from "bun:test"
import { leafHash, levels, path, pathIn, root } from "../../src/domain/Merkle.ts"
import { ProofCache } from "../../src/relay/ProofCache.ts"

describe("proof paths per batch", () => {
  test("paths read from a batch's cached levels are the paths of the tree; the cache keeps the most recent batches", () => {
    const leaves = Array.from({ length: 37 }, (_, i) => leafHash({ l2psUid: "u", messageHash: `m${i}`, encrypted: { i }, timestamp: i }))
    const tree = levels(leaves)
    expect(Buffer.from(tree.at(-1)![0]!).toString("hex")).toBe(root(leaves))
    for (let i = 0; i < leaves.length; i++) expect(pathIn(tree, i)).toEqual(path(leaves, i))
    const cache = new ProofCache<number>(2)
    cache.set("1", 1)
    cache.set("2", 2)
    expect(cache.get("1")).toBe(1)
    cache.set("3", 3)
    expect([cache.get("2"), cache.get("1"), cache.get("3"), cache.size]).toEqual([undefined, 1, 3, 2])
  })
})
