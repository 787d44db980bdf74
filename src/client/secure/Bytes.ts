/**
 * Byte helpers of the secure-session wire format: concatenation, unsigned LEB128 varints, a bounded
 * reader that fails with a clear reason instead of reading past the end, and erasure.
 */
import { SecureError } from "./SecureError.ts"

const encoder = new TextEncoder()

export const utf8 = (text: string): Uint8Array => encoder.encode(text)

export const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const u32 = (n: number): Uint8Array => {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

/** Reads every byte whatever the first difference (public keys are compared with it, so timing says nothing either way). */
export const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/** Overwrites secret bytes that are no longer needed, so that a later copy of memory or state holds zeros. */
export const wipe = (...secrets: ReadonlyArray<Uint8Array | undefined>): void => {
  for (const s of secrets) s?.fill(0)
}

/** Unsigned LEB128 of an integer 0..2^32-1: counters and ids cost one byte while they are below 128. */
export const varint = (n: number): Uint8Array => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`varint out of range: ${n}`)
  const out: Array<number> = []
  let v = n
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return Uint8Array.from(out)
}

/** Reads a message front to back; every read past the end, or a varint over 32 bits, is `Malformed`. */
export class Reader {
  private at = 0
  constructor(private readonly bytes: Uint8Array) {}

  get offset(): number {
    return this.at
  }

  u8(): number {
    if (this.at >= this.bytes.length) throw SecureError.malformed("truncated")
    return this.bytes[this.at++]!
  }

  take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw SecureError.malformed("truncated")
    const out = this.bytes.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  varint(): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < 5; i++) {
      const b = this.u8()
      value += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        // A varint must be minimal, so that one header has one encoding (the AEAD binds the bytes).
        if (i > 0 && b === 0) throw SecureError.malformed("non-minimal varint")
        if (value > 0xffff_ffff) throw SecureError.malformed("varint over 32 bits")
        return value
      }
      scale *= 0x80
    }
    throw SecureError.malformed("varint over 32 bits")
  }

  rest(): Uint8Array {
    const out = this.bytes.subarray(this.at)
    this.at = this.bytes.length
    return out
  }
}
