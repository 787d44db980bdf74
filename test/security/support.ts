/**
 * Shared pieces of the security tests: generators of malformed frames (fast-check), oracles that say
 * which error frame the node must answer each one with (written from DECISIONS.md / PROTOCOL-REFERENCE.md
 * and independent of the node's code), a paced pump that sends thousands of frames over a real socket
 * and checks every reply in order, and the node's resident memory.
 */
import fc from "fast-check"
import * as fs from "node:fs"
import type { Frame, RawSocket } from "../support/RawSocket.ts"
import { decodeBinary, isBinaryFrame } from "../../src/domain/BinaryFrames.ts"

// ─── Environment ────────────────────────────────────────────────────────────

/** The seed of every generator in this folder; `FUZZ_SEED=<n>` reproduces a failing run. */
export const SEED: number = Number(process.env["FUZZ_SEED"] ?? 20261126)

/** Resident memory of a process in KiB (`VmRSS` of /proc/<pid>/status). */
export const rssKb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1])
}

export const isAlive = (pid: number): boolean => fs.existsSync(`/proc/${pid}/status`) && !/State:\s+Z/.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"))

/** `ws://127.0.0.1:<port>` of the legacy server, from the node's ready line. */
export const legacyUrl = (output: ReadonlyArray<string>): string => {
  for (const line of output) {
    const m = /legacy ws:\/\/[^\s:]+:(\d+)/.exec(line)
    if (m) return `ws://127.0.0.1:${m[1]}`
  }
  throw new Error("no legacy URL in the node's output")
}

// ─── Oracles ────────────────────────────────────────────────────────────────

export const MAX_FRAME = 262_144
export const MAX_DEPTH = 64

export interface Expected {
  readonly code: string
  readonly message: string
  /** JSON text of the requestId the error must echo; undefined when it must carry none */
  readonly requestId: string | undefined
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const nonEmpty = (u: unknown): boolean => typeof u === "string" && u.length > 0
const utf8Fatal = new TextDecoder("utf-8", { fatal: true })

/** What the server reads from a frame the client sent: text frames go over the wire as UTF-8. */
export const onTheWire = (data: string | Uint8Array): { size: number; text: string | undefined } => {
  if (typeof data !== "string") {
    let text: string | undefined
    try {
      text = utf8Fatal.decode(data)
    } catch {
      text = undefined
    }
    return { size: data.byteLength, text }
  }
  const text = new TextDecoder().decode(new TextEncoder().encode(data))
  return { size: text.length, text }
}

/** Deepest nesting of arrays/objects of a parsed JSON value, with an explicit stack (no recursion). */
export const depthOf = (value: unknown): number => {
  let max = 0
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (typeof v !== "object" || v === null) continue
    const depth = d + 1
    if (depth > max) max = depth
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === "object" && child !== null) stack.push([child, depth])
  }
  return max
}

type Parsed = { ok: true; value: unknown } | { ok: false }
const parse = (text: string): Parsed => {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch {
    return { ok: false }
  }
}

const echoOf = (u: unknown): string | undefined => {
  if (!isRecord(u)) return undefined
  const id = u["requestId"]
  return typeof id === "string" || typeof id === "number" ? JSON.stringify(id) : undefined
}

const L2PS_HANDLERS = ["register", "send", "history", "discover", "request_public_key", "ack", "proof_request"] as const
const L2PS_REGISTRATION_REQUIRED: Record<string, string> = {
  send: "Register before sending",
  history: "Register first",
  discover: "Register before discovering peers",
  request_public_key: "Register before requesting public keys",
  ack: "Register before acknowledging messages",
  proof_request: "Register before requesting proofs",
}

/** The payload check of each L2PS request: the message when the payload's shape is wrong, "ok" when it passes, "?" when this oracle does not decide. */
const l2psPayloadError = (type: string, p: Record<string, unknown>): string | "ok" | "?" => {
  switch (type) {
    case "register": {
      const caps = p["capabilities"]
      const capsOk = !("capabilities" in p) || (Array.isArray(caps) && caps.length <= 16 && caps.every((c) => typeof c === "string"))
      return nonEmpty(p["publicKey"]) && nonEmpty(p["l2psUid"]) && nonEmpty(p["proof"]) && capsOk ? "ok" : "Missing publicKey, l2psUid, or proof"
    }
    case "send":
      // an array `encrypted` is left undecided (a record schema may accept it)
      if (Array.isArray(p["encrypted"])) return "?"
      return nonEmpty(p["to"]) && isRecord(p["encrypted"]) && nonEmpty(p["messageHash"]) ? "ok" : "Missing to, encrypted, or messageHash"
    case "history":
      return nonEmpty(p["peerKey"]) && nonEmpty(p["proof"]) ? "ok" : "Missing peerKey or proof"
    case "request_public_key":
      return nonEmpty(p["targetId"]) ? "ok" : "Missing targetId"
    case "ack": {
      const h = p["messageHashes"]
      const ok = Array.isArray(h) && h.length >= 1 && h.length <= 500 && h.every((x) => nonEmpty(x) && (x as string).length <= 256)
      return ok ? "ok" : "messageHashes must be a list of 1 to 500 message hashes"
    }
    case "proof_request":
      return nonEmpty(p["messageHash"]) ? "ok" : "Missing messageHash"
    default:
      return "?"
  }
}

/**
 * The error the L2PS server must answer `data` with (DECISIONS.md L2PS 1, 2, 11, 14; PROTOCOL-REFERENCE
 * §2.3), or undefined when the frame is a request this oracle does not decide (it is then not sent).
 */
export const l2psExpected = (data: string | Uint8Array, registered: boolean): Expected | undefined => {
  const invalid = (message: string, requestId?: string): Expected => ({ code: "INVALID_MESSAGE", message, requestId })
  const { size, text } = onTheWire(data)
  if (size > MAX_FRAME) return invalid(`Message too large (max ${MAX_FRAME} bytes)`)
  // A binary message whose first byte starts no UTF-8 text is in the binary encoding (docs/PROTOCOL.md).
  const binary = typeof data !== "string" && isBinaryFrame(data) ? decodeBinary(data) : undefined
  if (binary?._tag === "Bad") return invalid(binary.message, binary.requestId === undefined ? undefined : JSON.stringify(binary.requestId))
  if (binary === undefined && text === undefined) return invalid("Binary frame is not valid UTF-8")
  const parsed = binary?._tag === "Frame" ? { ok: true as const, value: binary.frame as unknown } : parse(text!)
  if (!parsed.ok) return invalid("Invalid JSON")
  const u = parsed.value
  if (depthOf(u) > MAX_DEPTH) return invalid(`JSON nested too deeply (max ${MAX_DEPTH} levels)`, echoOf(u))
  const requestIdOk = !isRecord(u) || !("requestId" in u) || typeof u["requestId"] === "string" || typeof u["requestId"] === "number"
  if (!isRecord(u) || !nonEmpty(u["type"]) || !isRecord(u["payload"]) || !requestIdOk) {
    return invalid("Missing or invalid type/payload", echoOf(u))
  }
  const type = u["type"] as string
  const requestId = echoOf(u)
  if (!(L2PS_HANDLERS as ReadonlyArray<string>).includes(type)) return invalid(`Unknown type: ${type.slice(0, 64)}`, requestId)
  if (!registered && type !== "register") return { code: "REGISTRATION_REQUIRED", message: L2PS_REGISTRATION_REQUIRED[type]!, requestId }
  const check = l2psPayloadError(type, u["payload"] as Record<string, unknown>)
  return check === "ok" || check === "?" ? undefined : invalid(check, requestId)
}

const LEGACY_HANDLERS = ["register", "discover", "request_public_key", "message", "debug_question", "peer_response", "challenge"]
const LEGACY_REGISTRATION_REQUIRED: Record<string, string> = {
  discover: "You must register before discovering peers",
  request_public_key: "You must register before requesting public keys",
  message: "You must register before sending messages",
  debug_question: "You must register before sending debug messages",
}

/** The error the legacy server must answer `data` with (DECISIONS legacy 1-3, PROTOCOL-REFERENCE §1.3), or undefined. */
export const legacyExpected = (data: string | Uint8Array, registered: boolean): Expected | undefined => {
  const invalid = (message: string): Expected => ({ code: "INVALID_MESSAGE", message, requestId: undefined })
  const { size, text } = onTheWire(data)
  if (size > MAX_FRAME) return invalid(`Message too large (max ${MAX_FRAME} characters)`)
  if (text === undefined) return invalid("Binary frame is not valid UTF-8")
  const parsed = parse(text)
  if (!parsed.ok) return invalid("Invalid JSON")
  const u = parsed.value
  if (depthOf(u) > MAX_DEPTH) return invalid(`JSON nested too deeply (max ${MAX_DEPTH} levels)`)
  if (!isRecord(u) || !nonEmpty(u["type"]) || !isRecord(u["payload"])) return invalid("Invalid message format")
  const type = u["type"] as string
  const p = u["payload"] as Record<string, unknown>
  if (!LEGACY_HANDLERS.includes(type)) return invalid(`Unknown message type: ${type.slice(0, 64)}`)
  const clientIdOk = (x: unknown) => nonEmpty(x) && (x as string).length <= 256
  if (type === "peer_response") {
    const q = p["questionId"]
    if (!(nonEmpty(q) && (q as string).length <= 64)) return invalid("Missing questionId")
    return invalid(`Unknown or expired question ${q as string}`)
  }
  // The registration challenge (SECURITY.md 4) is answered whatever its payload, registered or not.
  if (type === "challenge") return undefined
  if (type === "register") return clientIdOk(p["clientId"]) ? undefined : invalid("Invalid message schema")
  if (!registered) return { code: "REGISTRATION_REQUIRED", message: LEGACY_REGISTRATION_REQUIRED[type]!, requestId: undefined }
  if (type === "request_public_key") return clientIdOk(p["targetId"]) ? undefined : invalid("Missing target ID")
  if (type === "message") return clientIdOk(p["targetId"]) ? undefined : invalid("Missing required message fields")
  return undefined
}

/** A mismatch description, or undefined when `f` is exactly the expected L2PS error frame. */
export const l2psMismatch = (f: Frame, e: Expected): string | undefined => {
  const got = { type: f.type, code: f.payload?.code, message: f.payload?.message }
  const want = { type: "error", code: e.code, message: e.message }
  if (JSON.stringify(got) !== JSON.stringify(want)) return `want ${JSON.stringify(want)}, got ${JSON.stringify(got).slice(0, 300)}`
  const keys = Object.keys(f).sort().join(",")
  const wantKeys = e.requestId === undefined ? "payload,timestamp,type" : "payload,requestId,timestamp,type"
  if (keys !== wantKeys) return `keys ${keys}, want ${wantKeys}`
  if (typeof f.timestamp !== "number") return "no numeric timestamp"
  if (e.requestId !== undefined && JSON.stringify(f.requestId) !== e.requestId) return `requestId ${JSON.stringify(f.requestId)}, want ${e.requestId}`
  return undefined
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** A mismatch description, or undefined when `f` is exactly the expected legacy error frame. */
export const legacyMismatch = (f: Frame, e: Expected): string | undefined => {
  const got = { type: f.type, errorType: f.payload?.errorType, details: f.payload?.details }
  const want = { type: "error", errorType: e.code, details: e.message }
  if (JSON.stringify(got) !== JSON.stringify(want)) return `want ${JSON.stringify(want)}, got ${JSON.stringify(got).slice(0, 300)}`
  if (Object.keys(f).sort().join(",") !== "payload,type") return `envelope keys ${Object.keys(f).sort().join(",")}`
  if (!ISO.test(String(f.payload?.timestamp))) return `timestamp ${String(f.payload?.timestamp)}`
  return undefined
}

/** Whether a reply is the per-connection frame limit (DECISIONS L2PS 10) rather than the frame's own answer. */
export const isFrameLimit = (f: Frame): boolean =>
  f.type === "error" && (f.payload?.code === "RATE_LIMITED" || f.payload?.errorType === "RATE_LIMITED") &&
  (f.payload?.message === "Too many frames" || f.payload?.details === "Too many frames")

// ─── Generators ─────────────────────────────────────────────────────────────

/** A frame to send, built when sent (some are hundreds of KB). */
export interface Case {
  readonly kind: string
  readonly make: () => string | Uint8Array
}

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/)
/** Values of the wrong type for a string field (non-strings and the empty string). */
const wrongValue = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constant(""),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
)
const requestIdArb = fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null)), { nil: undefined })
const withRequestId = (frame: Record<string, unknown>, requestId: unknown): Record<string, unknown> =>
  requestId === undefined ? frame : { ...frame, requestId }

/** Arbitrary JSON values (objects, arrays, scalars), most of them not a valid envelope. */
const randomJson = fc.jsonValue({ maxDepth: 4 }).map((v): Case => {
  const text = JSON.stringify(v) ?? "null"
  return { kind: "json value", make: () => text }
})

/** Objects with a valid envelope shape but a payload (or envelope field) of the wrong types. */
const FIELDS: Record<string, ReadonlyArray<string>> = {
  register: ["publicKey", "l2psUid", "proof", "capabilities"],
  send: ["to", "encrypted", "messageHash"],
  history: ["peerKey", "proof", "before", "limit"],
  discover: [],
  request_public_key: ["targetId"],
  ack: ["messageHashes"],
  proof_request: ["messageHash"],
  message: ["targetId", "message"],
  peer_response: ["questionId", "response"],
  debug_question: [],
}
export const wrongTyped = (types: ReadonlyArray<string>) =>
  fc.record({
    type: fc.constantFrom(...types),
    values: fc.array(fc.oneof({ weight: 4, arbitrary: wrongValue }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 1, arbitrary: hex64 }), { minLength: 4, maxLength: 4 }),
    keep: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
    requestId: requestIdArb,
    timestamp: fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)), { nil: undefined }),
    badEnvelope: fc.oneof(
      { weight: 5, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom("payload-array", "payload-null", "type-number", "type-empty", "no-payload") },
    ),
  }).map((r): Case => {
    const payload: Record<string, unknown> = { ...r.extra }
    ;(Object.hasOwn(FIELDS, r.type) ? FIELDS[r.type]! : []).forEach((k, i) => {
      if (r.keep[i]) payload[k] = r.values[i]
    })
    let frame: Record<string, unknown> = { type: r.type, payload }
    if (r.timestamp !== undefined) frame["timestamp"] = r.timestamp
    switch (r.badEnvelope) {
      case "payload-array": frame = { ...frame, payload: Object.values(payload) }; break
      case "payload-null": frame = { ...frame, payload: null }; break
      case "type-number": frame = { ...frame, type: 7 }; break
      case "type-empty": frame = { ...frame, type: "" }; break
      case "no-payload": { const { payload: _p, ...rest } = frame; frame = rest; break }
    }
    const text = JSON.stringify(withRequestId(frame, r.requestId))
    return { kind: `wrong types (${r.type})`, make: () => text }
  })

/** Valid-looking frames, then truncated, with characters inserted or replaced. */
const mutated = fc.record({
  base: fc.oneof(
    hex64.map((k) => JSON.stringify({ type: "register", payload: { publicKey: k, l2psUid: "default", proof: "ab".repeat(64) }, timestamp: 1, requestId: "r1" })),
    hex64.map((k) => JSON.stringify({ type: "send", payload: { to: k, encrypted: { ciphertext: "Y2lw", nonce: "bm9u" }, messageHash: "h" }, requestId: 2 })),
    fc.constant(JSON.stringify({ type: "discover", payload: {}, timestamp: 5 })),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
  ),
  op: fc.constantFrom("truncate", "insert", "replace", "prefix"),
  at: fc.nat(),
  chunk: fc.string({ minLength: 1, maxLength: 3, unit: fc.constantFrom("{", "}", "[", "]", "\"", ",", ":", "\\", "x", "0", " ", "\u0000", "\u00e9", "\ud83d\ude00") }),
}).map((r): Case => {
  const i = r.base.length === 0 ? 0 : r.at % r.base.length
  const text =
    r.op === "truncate" ? r.base.slice(0, i)
    : r.op === "insert" ? r.base.slice(0, i) + r.chunk + r.base.slice(i)
    : r.op === "replace" ? r.base.slice(0, i) + r.chunk + r.base.slice(i + r.chunk.length)
    : r.chunk + r.base
  return { kind: `mutated (${r.op})`, make: () => text }
})

/** Random text, code points of the whole range (lone surrogates included) or printable ASCII. */
const randomText = fc.oneof(
  fc.string({ maxLength: 200, unit: "binary" }),
  fc.string({ maxLength: 200, unit: "grapheme" }),
  fc.string({ maxLength: 200 }),
).map((s): Case => ({ kind: "random text", make: () => s }))

const BAD_UTF8: ReadonlyArray<ReadonlyArray<number>> = [
  [0xff], [0xfe], [0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3],
]
/** Bytes with at least one invalid UTF-8 sequence (overlong, surrogate, truncated, out of range…), as a binary frame. */
const invalidUtf8 = fc.record({
  around: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 60 }).map((s) => new TextEncoder().encode(s))),
  bad: fc.constantFrom(...BAD_UTF8),
  at: fc.nat(),
}).map((r): Case => {
  const i = r.around.length === 0 ? 0 : r.at % (r.around.length + 1)
  const bytes = new Uint8Array([...r.around.slice(0, i), ...r.bad, ...r.around.slice(i)])
  return { kind: "invalid UTF-8", make: () => bytes }
})

/** Any text case sent as a binary frame (its UTF-8 bytes). */
const asBinary = (arb: fc.Arbitrary<Case>) =>
  arb.map((c): Case => ({
    kind: `binary ${c.kind}`,
    make: () => {
      const d = c.make()
      return typeof d === "string" ? new TextEncoder().encode(d) : d
    },
  }))

/** Deeply nested JSON: bare, as objects, inside a send's `encrypted`, inside a legacy `message`; around the 64-level limit and up to 100,000 levels. */
export const deeplyNested = fc.record({
  depth: fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 60, max: 70 }) },
    { weight: 4, arbitrary: fc.integer({ min: 71, max: 2000 }) },
    { weight: 2, arbitrary: fc.integer({ min: 2001, max: 12000 }) },
    { weight: 1, arbitrary: fc.constantFrom(10_000, 50_000, 100_000) },
  ),
  wrapper: fc.constantFrom("array", "object", "send", "message", "requestId-sibling"),
  to: hex64,
}).map((r): Case => ({
  kind: `nested ${r.depth} (${r.wrapper})`,
  make: () => {
    const arrays = (d: number) => "[".repeat(d) + "]".repeat(d)
    switch (r.wrapper) {
      case "array": return arrays(r.depth)
      case "object": return "{\"a\":".repeat(r.depth) + "1" + "}".repeat(r.depth)
      // envelope + payload + encrypted = 3 levels around the nested value
      case "send": return `{"type":"send","payload":{"to":"${r.to}","encrypted":{"ciphertext":"Y2lw","nonce":"bm9u","x":${arrays(Math.max(1, r.depth - 3))}},"messageHash":"${r.to}"},"requestId":"deep"}`
      case "message": return `{"type":"message","payload":{"targetId":"t","message":{"algorithm":"ml-kem-aes","x":${arrays(Math.max(1, r.depth - 3))}}}}`
      default: return `{"type":"discover","payload":{},"requestId":77,"junk":${arrays(Math.max(1, r.depth - 1))}}`
    }
  },
}))

/** Frames over the 262144 limit and under the socket's 1 MiB maximum, text or binary. */
export const oversized = fc.record({
  size: fc.integer({ min: MAX_FRAME + 1, max: 1024 * 1024 }),
  binary: fc.boolean(),
  fill: fc.constantFrom("x", "{", " "),
}).map((r): Case => ({
  kind: `oversized ${r.size}${r.binary ? " binary" : ""}`,
  make: () => (r.binary ? new Uint8Array(r.size).fill(r.fill.charCodeAt(0)) : r.fill.repeat(r.size)),
}))

/** The mix used against both servers; `types` are the request types worth giving wrong fields. */
export const malformedFrame = (types: ReadonlyArray<string>): fc.Arbitrary<Case> =>
  fc.oneof(
    { weight: 25, arbitrary: randomJson },
    { weight: 25, arbitrary: wrongTyped(types) },
    { weight: 12, arbitrary: mutated },
    { weight: 10, arbitrary: randomText },
    { weight: 10, arbitrary: invalidUtf8 },
    { weight: 8, arbitrary: asBinary(fc.oneof(randomJson, wrongTyped(types), mutated)) },
    { weight: 8, arbitrary: deeplyNested },
    { weight: 1, arbitrary: oversized },
  )

export const L2PS_TYPES = [...L2PS_HANDLERS, "fly", "__proto__", "constructor", "toString", "message"]
export const LEGACY_TYPES = [...LEGACY_HANDLERS, "send", "__proto__", "hasOwnProperty"]

/** `n` cases from `arb`, reproducibly from `seed`. */
export const sample = <A>(arb: fc.Arbitrary<A>, n: number, seed: number): A[] => fc.sample(arb, { seed, numRuns: n })

// ─── Pump ───────────────────────────────────────────────────────────────────

export interface PumpStats {
  sent: number
  checked: number
  skipped: number
  /** frames answered with the per-connection frame limit and sent again later */
  retried: number
  readonly failures: string[]
  readonly kinds: Map<string, number>
}

export const newStats = (): PumpStats => ({ sent: 0, checked: 0, skipped: 0, retried: 0, failures: [], kinds: new Map() })

export interface PumpOptions {
  readonly registered: boolean
  readonly oracle: (data: string | Uint8Array, registered: boolean) => Expected | undefined
  readonly mismatch: (f: Frame, e: Expected) => string | undefined
  /** frames sent at once before pacing starts (the server's bucket holds 200) */
  readonly burst?: number
  /** frames per second after the burst (the server refills 100/s) */
  readonly rate?: number
  /** frames in flight at most (the session inbox holds 256) */
  readonly window?: number
  /** reply types that are not answers (presence and such), skipped */
  readonly unsolicited?: ReadonlySet<string>
  readonly label: string
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Sends every case on `sock`, paced under the server's per-connection frame limit with a bounded window
 * in flight, and checks each reply, in order, against the oracle. A frame answered with the frame limit
 * instead is sent again later. Mismatches are collected in `stats.failures`.
 */
export const pump = async (sock: RawSocket, cases: ReadonlyArray<Case>, o: PumpOptions, stats: PumpStats): Promise<void> => {
  const burst = o.burst ?? 150
  const rate = o.rate ?? 90
  const window = o.window ?? 32
  const unsolicited = o.unsolicited ?? new Set(["peer_joined", "peer_left", "message_delivered", "message", "peer_disconnected"])
  const queue = cases.map((c, i) => ({ c, i }))
  const inflight: Array<{ c: Case; i: number; e: Expected; size: number }> = []
  const t0 = Date.now()
  let sent = 0
  while (queue.length > 0 || inflight.length > 0) {
    while (queue.length > 0 && inflight.length < window) {
      const due = t0 + (Math.max(0, sent - burst) * 1000) / rate
      if (Date.now() < due) {
        if (inflight.length > 0) break
        await sleep(due - Date.now())
      }
      const item = queue.shift()!
      const data = item.c.make()
      const e = o.oracle(data, o.registered)
      if (e === undefined) {
        stats.skipped++
        continue
      }
      if (typeof data === "string") sock.sendText(data)
      else sock.sendBinary(data)
      sent++
      stats.sent++
      stats.kinds.set(item.c.kind.split(" ")[0]!, (stats.kinds.get(item.c.kind.split(" ")[0]!) ?? 0) + 1)
      inflight.push({ ...item, e, size: typeof data === "string" ? data.length : data.byteLength })
    }
    if (inflight.length === 0) continue
    let f: Frame
    try {
      f = await sock.next(15_000)
    } catch (err) {
      const head = inflight[0]!
      stats.failures.push(`${o.label} #${head.i} (${head.c.kind}, ${head.size} chars): no reply: ${String(err).slice(0, 300)}`)
      return
    }
    if (f.type !== undefined && unsolicited.has(f.type)) continue
    const head = inflight.shift()!
    if (isFrameLimit(f) && head.e.message !== "Too many frames") {
      stats.retried++
      queue.push(head)
      continue
    }
    stats.checked++
    const bad = o.mismatch(f, head.e)
    if (bad !== undefined && stats.failures.length < 20) {
      const d = head.c.make()
      const shown = typeof d === "string" ? JSON.stringify(d.slice(0, 200)) : `bytes ${Buffer.from(d.slice(0, 80)).toString("hex")}`
      stats.failures.push(`${o.label} #${head.i} (${head.c.kind}): ${bad}\n    frame: ${shown}`)
    }
  }
}

export const report = (stats: PumpStats): string =>
  `sent ${stats.sent}, checked ${stats.checked}, skipped ${stats.skipped}, re-sent after the frame limit ${stats.retried}; kinds ${JSON.stringify(Object.fromEntries(stats.kinds))}`

/** Throws with the seed when any frame got the wrong answer. */
export const expectNoFailures = (stats: PumpStats, what: string): void => {
  if (stats.failures.length > 0) {
    throw new Error(`${what}: ${stats.failures.length} wrong answer(s) (reproduce with FUZZ_SEED=${SEED}):\n  ${stats.failures.join("\n  ")}`)
  }
}
