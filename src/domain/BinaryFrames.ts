/**
 * The compact binary encoding of the hot frames (docs/PROTOCOL.md, "Binary frames"), for sessions that
 * asked for it at registration (capability `"binary"`). A binary frame is the JSON frame it stands for,
 * written field by field: a tag byte for the type, keys and hashes as raw bytes instead of hex,
 * ciphertexts as raw bytes instead of base64, integers as varints. Decoding gives back exactly the JSON
 * frame (`{type, payload, timestamp?, requestId?}`), so everything past the codec, storage included,
 * sees the same frames either way; a frame this encoding cannot carry exactly stays JSON.
 *
 * Layout: `tag` (1 byte, 0x80-0xBF: a UTF-8 continuation byte, which never starts UTF-8 text, so a
 * binary frame is told apart from JSON sent in a binary WebSocket message by its first byte), `flags`
 * (1 byte: bits 0-1 the request id's kind, bit 2 a timestamp follows, bits 3-7 which optional fields
 * of the frame follow, in their order), the request id, the timestamp, then the frame's fields in the
 * order of `FRAMES`.
 */

/** What a frame's member is, on the wire. */
type Kind =
  | { readonly _tag: "str" }
  | { readonly _tag: "uint" }
  | { readonly _tag: "bool" }
  | { readonly _tag: "enum"; readonly values: ReadonlyArray<string> }
  | { readonly _tag: "strs"; readonly max: number }
  /** An object of strings by string (an ack's `receipts`): a count, then each name and its value. */
  | { readonly _tag: "strmap"; readonly max: number }

interface Field {
  /** Member of the payload: one name, or `encrypted` and one of its members. */
  readonly path: readonly [string] | readonly [string, string]
  readonly kind: Kind
  readonly optional: boolean
}

interface FrameDef {
  readonly type: string
  readonly tag: number
  readonly fields: ReadonlyArray<Field>
}

const str: Kind = { _tag: "str" }
const uint: Kind = { _tag: "uint" }
const bool: Kind = { _tag: "bool" }
const field = (name: string, kind: Kind, optional = false): Field => ({ path: [name], kind, optional })
const encrypted = (name: string, optional = false): Field => ({ path: ["encrypted", name], kind: str, optional })

/** Hashes an `ack` or `ack_response` carries at most (the `ack` payload's bound, src/domain/Frames.ts). */
export const MAX_HASHES = 500

/** The frames with a binary form: client frames 0x80-0x9F, server frames 0xA0-0xBF. */
export const FRAMES: ReadonlyArray<FrameDef> = [
  {
    type: "send",
    tag: 0x80,
    fields: [field("to", str), encrypted("ciphertext"), encrypted("nonce"), encrypted("ephemeralKey", true), field("messageHash", str)]
  },
  {
    type: "ack",
    tag: 0x81,
    fields: [field("messageHashes", { _tag: "strs", max: MAX_HASHES }), field("receipts", { _tag: "strmap", max: MAX_HASHES }, true)]
  },
  { type: "message_sent", tag: 0xa0, fields: [field("messageHash", str), field("l2psStatus", { _tag: "enum", values: ["submitted", "failed"] })] },
  { type: "message_queued", tag: 0xa1, fields: [field("messageHash", str), field("status", { _tag: "enum", values: ["queued"] })] },
  {
    type: "message",
    tag: 0xa2,
    fields: [
      field("from", str),
      field("to", str, true),
      encrypted("ciphertext"),
      encrypted("nonce"),
      encrypted("ephemeralKey", true),
      field("messageHash", str),
      field("offline", bool, true)
    ]
  },
  { type: "ack_response", tag: 0xa3, fields: [field("messageHashes", { _tag: "strs", max: MAX_HASHES })] },
  { type: "message_delivered", tag: 0xa4, fields: [field("messageHash", str), field("at", uint), field("receipt", str, true)] }
]

const byType = new Map(FRAMES.map((d) => [d.type, d]))
const byTag = new Map(FRAMES.map((d) => [d.tag, d]))

/** Whether `type` has a binary form. */
export const hasBinaryForm = (type: string): boolean => byType.has(type)

/** Whether a received WebSocket message is in this encoding (else it is JSON text). */
export const isBinaryFrame = (data: Uint8Array): boolean => data.length > 0 && data[0]! >= 0x80 && data[0]! <= 0xbf

/** A frame as JSON writes it: what `encodeBinary` takes and `decodeBinary` gives. */
export interface JsonFrame {
  readonly type: string
  readonly payload: Record<string, unknown>
  readonly timestamp?: number
  readonly requestId?: string | number
}

export type BinaryDecoded =
  | { readonly _tag: "Frame"; readonly frame: JsonFrame }
  | { readonly _tag: "Bad"; readonly message: string; readonly requestId: string | number | undefined }

// ---- strings: UTF-8, or the bytes of lowercase hex or of canonical base64 ----

const STR_UTF8 = 0
const STR_HEX = 1
const STR_BASE64 = 2

const HEX = "0123456789abcdef"
const hexOf: Array<string> = Array.from({ length: 256 }, (_, i) => HEX[i >> 4]! + HEX[i & 15]!)
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const b64Value = new Int8Array(128).fill(-1)
for (let i = 0; i < 64; i++) b64Value[B64.charCodeAt(i)] = i

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder("utf-8", { fatal: true })

const isLowerHex = (s: string): boolean => {
  if (s.length === 0 || s.length % 2 !== 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false
  }
  return true
}

const hexNibble = (c: number) => (c <= 0x39 ? c - 0x30 : c - 0x57)

/** The bytes of canonical, padded base64 (re-encoding them gives `s` back), or undefined. */
const base64Bytes = (s: string): Uint8Array | undefined => {
  const n = s.length
  if (n === 0 || n % 4 !== 0) return undefined
  const pad = s.charCodeAt(n - 1) === 0x3d ? (s.charCodeAt(n - 2) === 0x3d ? 2 : 1) : 0
  const out = new Uint8Array((n / 4) * 3 - pad)
  let o = 0
  for (let i = 0; i < n; i += 4) {
    const last = i + 4 === n
    const a = sextet(s, i), b = sextet(s, i + 1)
    const c = last && pad === 2 ? 0 : sextet(s, i + 2)
    const d = last && pad >= 1 ? 0 : sextet(s, i + 3)
    if ((a | b | c | d) < 0) return undefined
    const v = (a << 18) | (b << 12) | (c << 6) | d
    out[o++] = v >> 16
    if (o < out.length) out[o++] = (v >> 8) & 0xff
    if (o < out.length) out[o++] = v & 0xff
    // Canonical: the bits the padding leaves unused are zero.
    if (last && ((pad === 2 && (v & 0xffff) !== 0) || (pad === 1 && (v & 0xff) !== 0))) return undefined
  }
  return out
}
const sextet = (s: string, i: number): number => {
  const c = s.charCodeAt(i)
  return c < 128 ? b64Value[c]! : -1
}

const base64Of = (bytes: Uint8Array): string => {
  let out = ""
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const v = bytes[i]! << 16
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + "=="
  } else if (rest === 2) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + "="
  }
  return out
}

/** Whether UTF-8 carries `s` exactly (a lone surrogate would come back as U+FFFD). */
const wellFormed = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c > 0xdbff || i + 1 >= s.length) return false
    const d = s.charCodeAt(++i)
    if (d < 0xdc00 || d > 0xdfff) return false
  }
  return true
}

// ---- writing ----

class Writer {
  private buf = new Uint8Array(512)
  length = 0

  private room(n: number) {
    if (this.length + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n))
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
  }
  byte(b: number) {
    this.room(1)
    this.buf[this.length++] = b
  }
  /** An unsigned integer up to 2^53 - 1, 7 bits a byte, least significant first. */
  varint(n: number) {
    this.room(8)
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.length++] = n
  }
  bytes(b: Uint8Array) {
    this.room(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
  }
  /** False when `s` cannot be carried exactly. */
  str(s: string): boolean {
    if (isLowerHex(s)) {
      const n = s.length / 2
      this.varint(n * 4 + STR_HEX)
      this.room(n)
      for (let i = 0; i < n; i++) {
        this.buf[this.length++] = (hexNibble(s.charCodeAt(2 * i)) << 4) | hexNibble(s.charCodeAt(2 * i + 1))
      }
      return true
    }
    const b64 = base64Bytes(s)
    if (b64 !== undefined) {
      this.varint(b64.length * 4 + STR_BASE64)
      this.bytes(b64)
      return true
    }
    if (!wellFormed(s)) return false
    const utf8 = utf8Encoder.encode(s)
    this.varint(utf8.length * 4 + STR_UTF8)
    this.bytes(utf8)
    return true
  }
  set(at: number, b: number) {
    this.buf[at] = b
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}

const isUint = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0
const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The members a payload, and its `encrypted`, may have in this frame's binary form. */
const members = new Map(FRAMES.map((d) => [d.type, {
  outer: new Set(d.fields.map((f) => f.path[0])) as ReadonlySet<string>,
  inner: new Set(d.fields.flatMap((f) => (f.path.length === 2 ? [f.path[1]] : []))) as ReadonlySet<string>
}]))

const onlyMembers = (o: Record<string, unknown>, allowed: ReadonlySet<string>): boolean => {
  for (const k in o) if (!allowed.has(k) || o[k] === undefined) return false
  return true
}

const writeValue = (w: Writer, kind: Kind, v: unknown): boolean => {
  switch (kind._tag) {
    case "str":
      return typeof v === "string" && w.str(v)
    case "uint":
      if (!isUint(v)) return false
      w.varint(v)
      return true
    case "bool":
      if (typeof v !== "boolean") return false
      w.byte(v ? 1 : 0)
      return true
    case "enum": {
      const i = typeof v === "string" ? kind.values.indexOf(v) : -1
      if (i < 0) return false
      w.byte(i)
      return true
    }
    case "strs":
      if (!Array.isArray(v) || v.length > kind.max) return false
      w.varint(v.length)
      for (const s of v) if (typeof s !== "string" || !w.str(s)) return false
      return true
    case "strmap": {
      if (!isRecord(v)) return false
      const names = Object.keys(v)
      if (names.length > kind.max) return false
      w.varint(names.length)
      for (const k of names) if (typeof v[k] !== "string" || !w.str(k) || !w.str(v[k] as string)) return false
      return true
    }
  }
}

const valueAt = (payload: Record<string, unknown>, path: Field["path"]): unknown =>
  path.length === 1 ? payload[path[0]] : (payload[path[0]] as Record<string, unknown>)[path[1]]

/**
 * The binary form of a JSON frame, or undefined when it has none that decodes to exactly this frame
 * (a type without one, a member it does not know, a value of another kind, a request id that is
 * neither a string nor a safe non-negative integer): such a frame goes as JSON.
 */
export const encodeBinary = (frame: JsonFrame): Uint8Array | undefined => {
  const def = byType.get(frame.type)
  if (def === undefined || !isRecord(frame.payload)) return undefined
  const allowed = members.get(def.type)!
  const payload = frame.payload
  if (!onlyMembers(payload, allowed.outer)) return undefined
  if (allowed.inner.size > 0 && (!isRecord(payload.encrypted) || !onlyMembers(payload.encrypted, allowed.inner))) return undefined
  const w = new Writer()
  w.byte(def.tag)
  w.byte(0)
  let flags = 0
  const { requestId, timestamp } = frame
  if (requestId !== undefined) {
    if (isUint(requestId)) {
      flags |= 1
      w.varint(requestId)
    } else if (typeof requestId === "string") {
      flags |= 2
      if (!w.str(requestId)) return undefined
    } else return undefined
  }
  if (timestamp !== undefined) {
    if (!isUint(timestamp)) return undefined
    flags |= 4
    w.varint(timestamp)
  }
  let bit = 8
  for (const f of def.fields) {
    const v = valueAt(payload, f.path)
    if (f.optional) {
      if (v !== undefined) flags |= bit
      bit <<= 1
      if (v === undefined) continue
    }
    if (!writeValue(w, f.kind, v)) return undefined
  }
  w.set(1, flags)
  return w.done()
}

/** Types whose JSON frames `toBinary` rewrites: the prefix `encodeFrame` (src/domain/Frames.ts) writes. */
const prefixes = FRAMES.map((d) => `{"type":"${d.type}",`)

/**
 * A server frame's JSON text in binary, when its type has a binary form and the text is exactly such a
 * frame; else undefined (the text is sent as it is).
 */
export const toBinary = (text: string): Uint8Array | undefined => {
  if (!prefixes.some((p) => text.startsWith(p))) return undefined
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!isRecord(frame) || !onlyMembers(frame, FRAME_MEMBERS) || typeof frame.type !== "string" || !isRecord(frame.payload)) return undefined
  return encodeBinary(frame as unknown as JsonFrame)
}
const FRAME_MEMBERS: ReadonlySet<string> = new Set(["type", "payload", "timestamp", "requestId"])

// ---- reading ----

class Truncated {}
const TRUNCATED = new Truncated()

class Reader {
  pos = 0
  constructor(readonly buf: Uint8Array) {}
  get left() {
    return this.buf.length - this.pos
  }
  byte(): number {
    if (this.pos >= this.buf.length) throw TRUNCATED
    return this.buf[this.pos++]!
  }
  varint(): number | string {
    let n = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if (b < 0x80) return Number.isSafeInteger(n) ? n : "integer too large"
      scale *= 0x80
    }
    return "integer too large"
  }
  take(n: number): Uint8Array {
    if (n > this.left) throw TRUNCATED
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }
  str(): string | Error {
    const h = this.varint()
    if (typeof h === "string") return new Error(h)
    const kind = h % 4
    const n = Math.floor(h / 4)
    if (n > this.left) throw TRUNCATED
    const bytes = this.take(n)
    if (kind === STR_HEX) {
      if (n === 0) return new Error("empty hex string")
      let s = ""
      for (let i = 0; i < n; i++) s += hexOf[bytes[i]!]!
      return s
    }
    if (kind === STR_BASE64) {
      if (n === 0) return new Error("empty base64 string")
      return base64Of(bytes)
    }
    if (kind !== STR_UTF8) return new Error("unknown string kind")
    try {
      return utf8Decoder.decode(bytes)
    } catch {
      return new Error("string is not valid UTF-8")
    }
  }
}

const bad = (message: string, requestId?: string | number): BinaryDecoded => ({
  _tag: "Bad",
  message: `Invalid binary frame: ${message}`,
  requestId
})

const readValue = (r: Reader, kind: Kind): unknown => {
  switch (kind._tag) {
    case "str":
      return r.str()
    case "uint": {
      const n = r.varint()
      return typeof n === "string" ? new Error(n) : n
    }
    case "bool": {
      const b = r.byte()
      return b === 0 ? false : b === 1 ? true : new Error("boolean is neither 0 nor 1")
    }
    case "enum": {
      const i = r.byte()
      return i < kind.values.length ? kind.values[i] : new Error("unknown enumeration value")
    }
    case "strs": {
      const n = r.varint()
      if (typeof n === "string") return new Error(n)
      if (n > kind.max) return new Error(`more than ${kind.max} strings`)
      // Each string takes a byte at least: a count past what is left is a lie, refused before allocating.
      if (n > r.left) throw TRUNCATED
      const out: Array<string> = []
      for (let i = 0; i < n; i++) {
        const s = r.str()
        if (s instanceof Error) return s
        out.push(s)
      }
      return out
    }
    case "strmap": {
      const n = r.varint()
      if (typeof n === "string") return new Error(n)
      if (n > kind.max) return new Error(`more than ${kind.max} members`)
      if (2 * n > r.left) throw TRUNCATED
      const out: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) {
        const k = r.str()
        if (k instanceof Error) return k
        const s = r.str()
        if (s instanceof Error) return s
        if (Object.hasOwn(out, k)) return new Error(`member ${JSON.stringify(k)} twice`)
        // Defined, not assigned: a member named "__proto__" stays a member, as JSON.parse makes it.
        Object.defineProperty(out, k, { value: s, enumerable: true, writable: true, configurable: true })
      }
      return out
    }
  }
}

/**
 * The JSON frame a binary frame stands for, or why it is not one: every byte read is checked against
 * what is left, no count is trusted before it is, and nothing throws out of it.
 */
export const decodeBinary = (data: Uint8Array): BinaryDecoded => {
  if (data.length < 2) return bad("shorter than 2 bytes")
  const def = byTag.get(data[0]!)
  if (def === undefined) return bad(`unknown tag 0x${data[0]!.toString(16)}`)
  const flags = data[1]!
  const r = new Reader(data)
  r.pos = 2
  let requestId: string | number | undefined
  try {
    const idKind = flags & 3
    if (idKind === 3) return bad("unknown request id kind")
    if (idKind === 1) {
      const n = r.varint()
      if (typeof n === "string") return bad(`request id: ${n}`)
      requestId = n
    } else if (idKind === 2) {
      const s = r.str()
      if (s instanceof Error) return bad(`request id: ${s.message}`)
      requestId = s
    }
    let timestamp: number | undefined
    if ((flags & 4) !== 0) {
      const n = r.varint()
      if (typeof n === "string") return bad(`timestamp: ${n}`, requestId)
      timestamp = n
    }
    const optionals = def.fields.filter((f) => f.optional).length
    if ((flags >> (3 + optionals)) !== 0) return bad("unknown flags", requestId)
    const payload: Record<string, unknown> = {}
    let bit = 8
    for (const f of def.fields) {
      if (f.optional) {
        const present = (flags & bit) !== 0
        bit <<= 1
        if (!present) continue
      }
      const v = readValue(r, f.kind)
      if (v instanceof Error) return bad(`${f.path.join(".")}: ${v.message}`, requestId)
      if (f.path.length === 1) payload[f.path[0]] = v
      else ((payload[f.path[0]] ??= {}) as Record<string, unknown>)[f.path[1]] = v
    }
    if (r.left !== 0) return bad(`${r.left} bytes after the frame`, requestId)
    const frame: JsonFrame = {
      type: def.type,
      payload,
      ...(timestamp === undefined ? {} : { timestamp }),
      ...(requestId === undefined ? {} : { requestId })
    }
    return { _tag: "Frame", frame }
  } catch (e) {
    if (e instanceof Truncated) return bad("truncated", requestId)
    return bad("unreadable", requestId)
  }
}
