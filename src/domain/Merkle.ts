import { createHash } from "node:crypto"
import { leafData, type LeafMessage, type PathStep } from "./MerkleVerify.ts"

export { canonicalJson, leafData, type LeafMessage, type PathStep, verifyInclusion } from "./MerkleVerify.ts"

/**
 * Inclusion proofs as docs/PROTOCOL.md fixes them (RFC 6962 hashing): leaf = SHA-256(0x00 ‖ data),
 * node = SHA-256(0x01 ‖ left ‖ right), an odd node at the end of a level is promoted unchanged.
 * The tree and proofs for the prover, hashed with node:crypto; what a client needs to check a proof
 * (the leaf, the fold of a path) is in `MerkleVerify`, which runs in browsers too.
 */

const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex")
const fromHex = (h: string): Uint8Array => Buffer.from(h, "hex")

const PREFIXES = [Uint8Array.of(0x00), Uint8Array.of(0x01)] as const

// node:crypto (in Bun and Node): the prover hashes every message of every batch on the relay's thread.
const prefixed = (prefix: 0 | 1, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = createHash("sha256").update(PREFIXES[prefix])
  for (const p of parts) h.update(p)
  return h.digest()
}

export const leafHash = (m: LeafMessage): string => toHex(prefixed(0x00, leafData(m)))

const nodeHash = (left: Uint8Array, right: Uint8Array) => prefixed(0x01, left, right)

/** Root over hex leaf hashes (at least one). */
export const root = (leaves: ReadonlyArray<string>): string => {
  if (leaves.length === 0) throw new Error("empty tree")
  let level: Array<Uint8Array> = leaves.map(fromHex)
  while (level.length > 1) {
    const up: Array<Uint8Array> = []
    for (let i = 0; i < level.length; i += 2) up.push(i + 1 < level.length ? nodeHash(level[i]!, level[i + 1]!) : level[i]!)
    level = up
  }
  return toHex(level[0]!)
}

/** Every level of the tree, leaves first, root last: what `pathIn` reads a path from (cached per batch). */
export const levels = (leaves: ReadonlyArray<string>): Array<Array<Uint8Array>> => {
  let level: Array<Uint8Array> = leaves.map(fromHex)
  const all = [level]
  while (level.length > 1) {
    const up: Array<Uint8Array> = []
    for (let j = 0; j < level.length; j += 2) up.push(j + 1 < level.length ? nodeHash(level[j]!, level[j + 1]!) : level[j]!)
    all.push(level = up)
  }
  return all
}

/** Sibling hashes from the leaf at `index` up to the root, read from the tree's `levels`. */
export const pathIn = (tree: ReadonlyArray<ReadonlyArray<Uint8Array>>, index: number): Array<PathStep> => {
  const steps: Array<PathStep> = []
  let i = index
  for (const level of tree.slice(0, -1)) {
    const sibling = i % 2 === 0 ? i + 1 : i - 1
    if (sibling < level.length) steps.push({ hash: toHex(level[sibling]!), side: sibling < i ? "left" : "right" })
    i = Math.floor(i / 2)
  }
  return steps
}

/** The leaf at `index` of the tree's `levels`, as hex. */
export const leafIn = (tree: ReadonlyArray<ReadonlyArray<Uint8Array>>, index: number): string => toHex(tree[0]![index]!)

/** Sibling hashes from the leaf at `index` up to the root. */
export const path = (leaves: ReadonlyArray<string>, index: number): Array<PathStep> => pathIn(levels(leaves), index)
