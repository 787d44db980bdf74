import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { createHash } from "node:crypto"
import { canonicalJson, leafData, leafHash, path, root, verifyInclusion } from "../../src/domain/Merkle.ts"
import * as MerkleVerify from "../../src/domain/MerkleVerify.ts"

const h = (...parts: Array<Buffer>) => createHash("sha256").update(Buffer.concat(parts)).digest()
const leafOf = (i: number) => h(Buffer.from([0]), Buffer.from(`leaf-${i}`)).toString("hex")
const node = (l: string, r: string) => h(Buffer.from([1]), Buffer.from(l, "hex"), Buffer.from(r, "hex")).toString("hex")

describe("Merkle (RFC 6962 hashing, odd node promoted)", () => {
  test("roots match a hand-built tree, including promoted odd nodes", () => {
    const l = [0, 1, 2, 3, 4].map(leafOf)
    expect(root([l[0]!])).toBe(l[0]!)
    expect(root(l.slice(0, 2))).toBe(node(l[0]!, l[1]!))
    expect(root(l.slice(0, 3))).toBe(node(node(l[0]!, l[1]!), l[2]!))
    expect(root(l)).toBe(node(node(node(l[0]!, l[1]!), node(l[2]!, l[3]!)), l[4]!))
  })

  test("every leaf's path folds to the root for sizes 1..33; a tampered path or leaf fails", () => {
    for (let n = 1; n <= 33; n++) {
      const leaves = Array.from({ length: n }, (_, i) => leafOf(i))
      const r = root(leaves)
      for (let i = 0; i < n; i++) {
        const p = path(leaves, i)
        expect(verifyInclusion(leaves[i]!, p, r)).toBe(true)
        if (p.length > 0) {
          const flipped = p.map((s, j) => (j === 0 ? { ...s, side: s.side === "left" ? "right" as const : "left" as const } : s))
          expect(verifyInclusion(leaves[i]!, flipped, r)).toBe(false)
          const swapped = p.map((s, j) => (j === p.length - 1 ? { ...s, hash: leafOf(999) } : s))
          expect(verifyInclusion(leaves[i]!, swapped, r)).toBe(false)
        }
        expect(verifyInclusion(leafOf(1000), p, r)).toBe(false)
      }
    }
  })

  test("the client's portable hashing (MerkleVerify, no node:crypto) gives the prover's leaves and accepts its paths", () => {
    fc.assert(fc.property(
      fc.record({ l2psUid: fc.string(), messageHash: fc.string(), encrypted: fc.jsonValue(), timestamp: fc.integer() }),
      (m) => expect(MerkleVerify.leafHash(m)).toBe(leafHash(m))
    ))
    for (let n = 1; n <= 17; n++) {
      const leaves = Array.from({ length: n }, (_, i) => leafOf(i))
      const r = root(leaves)
      leaves.forEach((leaf, i) => {
        expect(MerkleVerify.verifyInclusion(leaf, path(leaves, i), r)).toBe(true)
        if (n > 1) expect(MerkleVerify.verifyInclusion(leafOf(i + n), path(leaves, i), r)).toBe(false)
      })
    }
  })

  test("a leaf commits to hash, payload, network and timestamp, whatever the key order", () => {
    const m = { l2psUid: "net", messageHash: "abc", timestamp: 5, encrypted: { nonce: "n", ciphertext: "c", extra: { b: 1, a: [2] } } }
    const reordered = { encrypted: { extra: { a: [2], b: 1 }, ciphertext: "c", nonce: "n" }, timestamp: 5, messageHash: "abc", l2psUid: "net" }
    expect(leafHash(m)).toBe(leafHash(reordered))
    expect(leafHash(m)).toBe(h(Buffer.from([0]), Buffer.from(leafData(m))).toString("hex"))
    expect(leafHash({ ...m, timestamp: 6 })).not.toBe(leafHash(m))
    expect(leafHash({ ...m, l2psUid: "other" })).not.toBe(leafHash(m))
    expect(leafHash({ ...m, encrypted: { ...m.encrypted, ciphertext: "d" } })).not.toBe(leafHash(m))
    expect(canonicalJson({ b: 1, a: { d: null, c: "x" } })).toBe('{"a":{"c":"x","d":null},"b":1}')
  })

  test("canonical JSON: keys sorted by UTF-16 code units at every depth, undefined members left out", () => {
    // The definition, written the obvious way.
    const reference = (v: unknown): string => {
      if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null"
      if (Array.isArray(v)) return `[${v.map(reference).join(",")}]`
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${reference(x)}`).join(",")}}`
    }
    expect(canonicalJson({ z: [undefined, { b: 2, a: undefined }], "é": 1, E: 2, "": 3 }))
      .toBe('{"":3,"E":2,"z":[null,{"b":2}],"é":1}')
    fc.assert(fc.property(fc.jsonValue(), (v) => canonicalJson(v) === reference(v)), { seed: 20261126, numRuns: 500 })
  })
})
