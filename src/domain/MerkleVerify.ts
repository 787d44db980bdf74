import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"

/**
 * What a client needs to check an inclusion proof (docs/PROTOCOL.md, RFC 6962 hashing): the leaf of
 * a message and the fold of its path to the root. Pure JavaScript (no `node:` module) so the client
 * library runs in browsers; the prover builds the same hashes with node:crypto in `Merkle`.
 */

export interface PathStep {
  readonly hash: string
  readonly side: "left" | "right"
}

const prefixed = (prefix: 0 | 1, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = sha256.create().update(Uint8Array.of(prefix))
  for (const p of parts) h.update(p)
  return h.digest()
}

/** JSON with object keys sorted at every depth: the same bytes whatever order storage returns. */
export const canonicalJson = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  if (Array.isArray(value)) {
    let out = "["
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + canonicalJson(value[i])
    return out + "]"
  }
  const record = value as Record<string, unknown>
  // The prover runs this on every message: payloads usually come with their keys already in order.
  const keys = Object.keys(record).filter((k) => record[k] !== undefined)
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort()
      break
    }
  }
  let out = "{"
  for (let i = 0; i < keys.length; i++) out += (i === 0 ? "" : ",") + JSON.stringify(keys[i]) + ":" + canonicalJson(record[keys[i]!])
  return out + "}"
}

/** What a leaf commits to: the message's hash, its encrypted payload, its network and its server timestamp. */
export interface LeafMessage {
  readonly l2psUid: string
  readonly messageHash: string
  readonly encrypted: unknown
  readonly timestamp: number
}

export const leafData = (m: LeafMessage): Uint8Array =>
  new TextEncoder().encode(canonicalJson({
    encrypted: m.encrypted,
    l2psUid: m.l2psUid,
    messageHash: m.messageHash,
    timestamp: m.timestamp
  }))

export const leafHash = (m: LeafMessage): string => bytesToHex(prefixed(0x00, leafData(m)))

const HEX64 = /^[0-9a-f]{64}$/

/** Folds the path from the leaf; true when it reaches `expectedRoot`. */
export const verifyInclusion = (leaf: string, steps: ReadonlyArray<PathStep>, expectedRoot: string): boolean => {
  if (!HEX64.test(leaf) || !HEX64.test(expectedRoot)) return false
  let acc: Uint8Array = hexToBytes(leaf)
  for (const s of steps) {
    if (!HEX64.test(s.hash)) return false
    acc = s.side === "left" ? prefixed(0x01, hexToBytes(s.hash), acc) : prefixed(0x01, acc, hexToBytes(s.hash))
  }
  return bytesToHex(acc) === expectedRoot
}
