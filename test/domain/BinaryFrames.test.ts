import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import { decodeBinary, encodeBinary, FRAMES, isBinaryFrame, type JsonFrame, MAX_HASHES, toBinary } from "../../src/domain/BinaryFrames.ts"
import { encodeFrame } from "../../src/domain/Frames.ts"

const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString("hex"))
const base64 = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b).toString("base64"))
/** Any string UTF-8 carries exactly, hex and base64 among them, and strings that only look like them. */
const anyString = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ maxLength: 40 }),
  hex(32),
  base64,
  hex(32).map((s) => s.toUpperCase()),
  base64.map((s) => s.replace(/=+$/, "")),
  fc.constantFrom("", "secure", "a", "ab=", "AB==", "AQ==", "AR==", "abc")
)
const requestId = fc.option(fc.oneof(anyString, fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)), { nil: undefined })
const timestamp = fc.option(fc.oneof(fc.nat(), fc.constant(1_733_000_000_000), fc.constant(Number.MAX_SAFE_INTEGER)), { nil: undefined })

const encrypted = fc.record(
  { ciphertext: anyString, nonce: anyString, ephemeralKey: anyString },
  { requiredKeys: ["ciphertext", "nonce"] }
)
const payloads: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  send: fc.record({ to: anyString, encrypted, messageHash: anyString }),
  ack: fc.record(
    { messageHashes: fc.array(anyString, { maxLength: 20 }), receipts: fc.dictionary(anyString, anyString, { maxKeys: 5 }) },
    { requiredKeys: ["messageHashes"] }
  ),
  message_sent: fc.record({ messageHash: anyString, l2psStatus: fc.constantFrom("submitted", "failed") }),
  message_queued: fc.record({ messageHash: anyString, status: fc.constant("queued") }),
  message: fc.record(
    { from: anyString, to: anyString, encrypted, messageHash: anyString, offline: fc.boolean() },
    { requiredKeys: ["from", "encrypted", "messageHash"] }
  ),
  ack_response: fc.record({ messageHashes: fc.array(anyString, { maxLength: 20 }) }),
  message_delivered: fc.record({ messageHash: anyString, at: fc.nat(), receipt: anyString }, { requiredKeys: ["messageHash", "at"] })
}

const frame: fc.Arbitrary<JsonFrame> = fc.constantFrom(...FRAMES.map((d) => d.type)).chain((type) =>
  fc.record({ payload: payloads[type]!, requestId, timestamp }).map(({ payload, requestId, timestamp }) => ({
    type,
    payload,
    ...(timestamp === undefined ? {} : { timestamp }),
    ...(requestId === undefined ? {} : { requestId })
  }))
)

describe("binary frames", () => {
  test("every frame of a type with a binary form round-trips to the same JSON frame", () => {
    fc.assert(fc.property(frame, (f) => {
      const bytes = encodeBinary(f)
      expect(bytes).toBeDefined()
      expect(isBinaryFrame(bytes!)).toBe(true)
      const decoded = decodeBinary(bytes!)
      expect(decoded).toEqual({ _tag: "Frame", frame: f })
      // The same JSON text as the frame it stands for (members in the order the node writes them).
      if (decoded._tag === "Frame") expect(JSON.parse(JSON.stringify(decoded.frame))).toEqual(JSON.parse(JSON.stringify(f)))
    }), { numRuns: 2000 })
  })

  test("any bytes decode to a frame or a clear error, never a throw", () => {
    const tagged = fc.tuple(fc.constantFrom(...FRAMES.map((d) => d.tag), 0x80, 0xbf, 0x9f), fc.uint8Array({ maxLength: 200 }))
      .map(([tag, rest]) => new Uint8Array([tag, ...rest]))
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), tagged), (bytes) => {
      const decoded = decodeBinary(bytes)
      if (decoded._tag === "Bad") expect(decoded.message).toStartWith("Invalid binary frame: ")
      // What decodes is a frame like any other: it encodes, and back to itself.
      else expect(decodeBinary(encodeBinary(decoded.frame)!)).toEqual(decoded)
    }), { numRuns: 5000 })
  })

  test("a frame cut short anywhere, or with a byte more, is refused", () => {
    fc.assert(fc.property(frame, fc.nat(), (f, cut) => {
      const bytes = encodeBinary(f)!
      const short = decodeBinary(bytes.subarray(0, cut % bytes.length))
      expect(short._tag).toBe("Bad")
      const long = decodeBinary(new Uint8Array([...bytes, 0]))
      expect(long._tag).toBe("Bad")
    }), { numRuns: 500 })
  })

  test("frames it cannot carry exactly have no binary form: they stay JSON", () => {
    const base = { type: "message_sent", payload: { messageHash: "ab", l2psStatus: "submitted" }, timestamp: 1 }
    expect(encodeBinary(base)).toBeDefined()
    expect(encodeBinary({ ...base, type: "registered" })).toBeUndefined()
    expect(encodeBinary({ ...base, payload: { ...base.payload, extra: 1 } })).toBeUndefined()
    expect(encodeBinary({ ...base, payload: { ...base.payload, l2psStatus: "other" } })).toBeUndefined()
    expect(encodeBinary({ ...base, payload: { messageHash: "\ud800", l2psStatus: "submitted" } })).toBeUndefined()
    expect(encodeBinary({ ...base, timestamp: 1.5 })).toBeUndefined()
    expect(encodeBinary({ ...base, requestId: -1 })).toBeUndefined()
    const send = { type: "send", payload: { to: "ab", encrypted: { ciphertext: "x", nonce: "y", other: "z" }, messageHash: "h" } }
    expect(encodeBinary(send)).toBeUndefined()
    expect(encodeBinary({ type: "ack", payload: { messageHashes: Array.from({ length: MAX_HASHES + 1 }, () => "h") } })).toBeUndefined()
  })

  test("sealed receipts round-trip: on an ack by message hash, on message_delivered; the node's frames carry them", () => {
    const h = "ab".repeat(32)
    const receipt = Buffer.from(new Uint8Array(114).fill(7)).toString("base64")
    const ack: JsonFrame = { type: "ack", payload: { messageHashes: [h], receipts: { [h]: receipt } }, timestamp: 5, requestId: 3 }
    const bytes = encodeBinary(ack)!
    expect(decodeBinary(bytes)).toEqual({ _tag: "Frame", frame: ack })
    // The receipt's bytes, not its base64: a little over its 114 bytes and the hash's 32.
    expect(bytes.length).toBeLessThan(114 + 32 + 32 + 20)
    const delivered = encodeFrame("message_delivered", { messageHash: h, at: 9, receipt }, 9)
    const binary = toBinary(delivered)!
    expect(decodeBinary(binary)).toEqual({ _tag: "Frame", frame: JSON.parse(delivered) })
    expect(binary.length).toBeLessThan(114 + 32 + 20)
    // A member named as an object's own prototype stays a member, as JSON.parse makes it.
    const proto = JSON.parse(`{"type":"ack","payload":{"messageHashes":["a"],"receipts":{"__proto__":"AAAA"}}}`) as JsonFrame
    const back = decodeBinary(encodeBinary(proto)!)
    expect(back._tag === "Frame" && Object.keys(back.frame.payload.receipts as object)).toEqual(["__proto__"])
    expect(back).toEqual({ _tag: "Frame", frame: proto })
    // Not a string, or over the bound: no binary form (it goes as JSON, and the node refuses it there).
    expect(encodeBinary({ type: "ack", payload: { messageHashes: [h], receipts: { [h]: 1 } } })).toBeUndefined()
    const many = Object.fromEntries(Array.from({ length: MAX_HASHES + 1 }, (_, i) => [`h${i}`, "AAAA"]))
    expect(encodeBinary({ type: "ack", payload: { messageHashes: [h], receipts: many } })).toBeUndefined()
  })

  test("a receipts map naming a message twice, or claiming more members than bytes, is refused", () => {
    // ack, flags: receipts present (bit 3); no hashes; 2 members: "ab" (hex) → "AAAA" (base64), twice.
    const member = [1 * 4 + 1, 0xab, 3 * 4 + 2, 0, 0, 0]
    expect(decodeBinary(new Uint8Array([0x81, 8, 0, 2, ...member, ...member]))).toMatchObject({
      _tag: "Bad",
      message: 'Invalid binary frame: receipts: member "ab" twice'
    })
    expect(decodeBinary(new Uint8Array([0x81, 8, 0, 1, ...member]))._tag).toBe("Frame")
    expect(decodeBinary(new Uint8Array([0x81, 8, 0, 0xf4, 0x03, ...member]))).toMatchObject({ _tag: "Bad", message: "Invalid binary frame: truncated" })
    expect(decodeBinary(new Uint8Array([0x81, 8, 0, 0xf5, 0x03]))).toMatchObject({ _tag: "Bad", message: "Invalid binary frame: receipts: more than 500 members" })
  })

  test("bounded: counts and lengths are checked against what is left before anything is allocated", () => {
    // An ack claiming 500 hashes in 3 bytes; a string claiming 2^40 bytes; a varint of 9 bytes.
    expect(decodeBinary(new Uint8Array([0x81, 0, 0xf4, 0x03]))).toMatchObject({ _tag: "Bad", message: "Invalid binary frame: truncated" })
    expect(decodeBinary(new Uint8Array([0x81, 0, 0xf5, 0x03]))).toMatchObject({ _tag: "Bad", message: "Invalid binary frame: messageHashes: more than 500 strings" })
    expect(decodeBinary(new Uint8Array([0xa0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]))._tag).toBe("Bad")
    expect(decodeBinary(new Uint8Array([0xa0, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toMatchObject({
      _tag: "Bad",
      message: "Invalid binary frame: timestamp: integer too large"
    })
    // The request id, once read, is kept for the error: the client can match it.
    expect(decodeBinary(new Uint8Array([0xa0, 1, 7, 0xff]))).toMatchObject({ _tag: "Bad", requestId: 7 })
  })

  test("the node's JSON frames of the hot types have a binary form; the others do not", () => {
    const h = "ab".repeat(32)
    const message = encodeFrame("message", { from: h, encrypted: { ciphertext: "AAEC", nonce: "secure" }, messageHash: h }, 1_733_000_000_000)
    const bytes = toBinary(message)!
    expect(bytes.length).toBeLessThan(message.length / 2)
    expect(decodeBinary(bytes)).toEqual({ _tag: "Frame", frame: JSON.parse(message) })
    expect(toBinary(encodeFrame("message_sent", { messageHash: h, l2psStatus: "submitted" }, 5, "req_1"))).toBeDefined()
    expect(toBinary(encodeFrame("registered", { success: true }, 5))).toBeUndefined()
    expect(toBinary(encodeFrame("error", { code: "X", message: "y" }, 5))).toBeUndefined()
  })
})
