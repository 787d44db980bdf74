/** An ed25519 public key: exactly 64 hex characters. */
const KEY = /^[0-9a-fA-F]{64}$/
const HEX = /^(?:[0-9a-fA-F]{2})+$/

export const isPublicKey = (s: unknown): s is string => typeof s === "string" && KEY.test(s)

/** Keys are compared in lower case; the frame's own spelling is kept only for echoes and proofs. */
export const normalizeKey = (s: string): string => s.toLowerCase()

export const isHex = (s: string): boolean => HEX.test(s)

// Node's Buffer where there is one (the node's hot path); plain code in browsers, where the client's
// secure sessions check keys with `isStrictPublicKey` too. Both stop at the first pair that is not hex.
const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer

const plainHexToBytes = (hex: string): Uint8Array => {
  const out: Array<number> = []
  for (let i = 0; i + 1 < hex.length; i += 2) {
    const pair = hex.slice(i, i + 2)
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) break
    out.push(parseInt(pair, 16))
  }
  return Uint8Array.from(out)
}

export const hexToBytes = (hex: string): Uint8Array =>
  NodeBuffer === undefined ? plainHexToBytes(hex) : Uint8Array.from(NodeBuffer.from(hex, "hex"))

export const bytesToHex = (bytes: Uint8Array): string =>
  NodeBuffer === undefined ? Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") : NodeBuffer.from(bytes).toString("hex")

/** Canonical name of a conversation, whichever side asks. */
export const conversationOf = (a: string, b: string): string => (a < b ? `${a}:${b}` : `${b}:${a}`)

/** The y coordinates (little endian, sign bit clear) of the 8 small-order points: 0, 1, p-1 and ±y of order 8. */
const SMALL_ORDER_Y = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
].map(hexToBytes)

/**
 * Whether 32 bytes may name an ed25519 public key a signature can bind: y < p (the canonical encoding)
 * and not a small-order point (whatever its x sign, which also rules out "negative zero"). A small-order
 * key verifies forged signatures (all zeros, for one) under cofactored and some cofactorless verifiers
 * alike, so it would be an identity anyone can use; a non-canonical encoding would be a second name for
 * another key. Byte comparisons only (no point decompression: it runs for every registration); bytes
 * that are not a point at all fail verification anyway.
 */
export const isStrictPublicKey = (bytes: Uint8Array): boolean => {
  if (bytes.length !== 32) return false
  // y >= p = 2^255 - 19: the top byte (sign bit cleared) is 0x7f, bytes 30..1 are 0xff and byte 0 >= 0xed.
  let top = (bytes[31]! & 0x7f) === 0x7f && bytes[0]! >= 0xed
  for (let i = 1; top && i < 31; i++) top = bytes[i] === 0xff
  if (top) return false
  for (const y of SMALL_ORDER_Y) {
    let same = (bytes[31]! & 0x7f) === y[31]
    for (let i = 0; same && i < 31; i++) same = bytes[i] === y[i]
    if (same) return false
  }
  return true
}
