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
