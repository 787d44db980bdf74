import { ed25519 } from "@noble/curves/ed25519.js"

/** An ed25519 public key: exactly 64 hex characters. */
const KEY = /^[0-9a-fA-F]{64}$/
const HEX = /^(?:[0-9a-fA-F]{2})+$/

export const isPublicKey = (s: unknown): s is string => typeof s === "string" && KEY.test(s)

/** Keys are compared in lower case; the frame's own spelling is kept only for echoes and proofs. */
export const normalizeKey = (s: string): string => s.toLowerCase()

export const isHex = (s: string): boolean => HEX.test(s)

export const hexToBytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, "hex"))

export const bytesToHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** Canonical name of a conversation, whichever side asks. */
export const conversationOf = (a: string, b: string): string => (a < b ? `${a}:${b}` : `${b}:${a}`)

/**
 * Whether 32 bytes are an ed25519 public key a signature can bind: the canonical encoding (y < p, no
 * "negative zero") of a point outside the small-order subgroup. A small-order key verifies forged
 * signatures (all zeros, for one) under cofactored and some cofactorless verifiers alike, so it would be
 * an identity anyone can use; a non-canonical encoding would be a second name for another key.
 */
export const isStrictPublicKey = (bytes: Uint8Array): boolean => {
  if (bytes.length !== 32) return false
  try {
    const point = ed25519.Point.fromBytes(bytes, false)
    if (point.isSmallOrder()) return false
    const canonical = point.toBytes()
    for (let i = 0; i < 32; i++) if (canonical[i] !== bytes[i]) return false
    return true
  } catch {
    return false
  }
}
