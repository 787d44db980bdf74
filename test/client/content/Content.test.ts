import { describe, expect, test } from "bun:test"
import * as Schema from "effect/Schema"
import fc from "fast-check"
import * as Content from "../../../src/client/content/Content.ts"
import * as ContentType from "../../../src/client/content/ContentType.ts"

const first: Content.Link = { position: 1, previous: Content.NO_PREVIOUS }
const Poll1 = ContentType.defineType("acme.poll", 1, Schema.Struct({ question: Schema.String, options: Schema.Array(Schema.String) }))
const Poll2 = ContentType.defineType("acme.poll", 2, Schema.Struct({ question: Schema.String, options: Schema.Array(Schema.String), multiple: Schema.Boolean }))

describe("payload types", () => {
  test("every built-in type goes through and comes back typed", () => {
    const r = Content.make()
    const hash = "ab".repeat(32)
    const cases: Array<[ContentType.ContentType<any>, unknown]> = [
      [ContentType.text, { text: "héllo ✓" }],
      [ContentType.delivered, { messageHashes: [hash, "00ff"] }],
      [ContentType.read, { messageHashes: [] }],
      [ContentType.typing, { typing: true }],
      [ContentType.typing, { typing: false }]
    ]
    for (const [type, body] of cases) {
      const d = r.decode(r.encode(type, body, { position: 7, previous: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }))
      expect(d._tag).toBe("Content")
      expect(Content.is(d, type)).toBe(true)
      expect(d._tag === "Content" && d.body).toEqual(body)
      expect(d.link?.position).toBe(7)
      expect([...d.link!.previous]).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    }
  })

  test("a 100-character text is 112 bytes: 12 of envelope, 14 once positions pass 16,383", () => {
    const r = Content.make()
    const body = { text: "x".repeat(100) }
    expect(r.encode(ContentType.text, body, first).length).toBe(112)
    expect(r.encode(ContentType.text, body, { position: 100_000, previous: Content.NO_PREVIOUS }).length).toBe(114)
  })

  test("a message outside the sequence (position 0) carries no previous: a receipt of one hash is 8 bytes shorter", () => {
    const r = Content.make()
    const body = { messageHashes: ["ab".repeat(32)] }
    const control = r.encode(ContentType.delivered, body, Content.CONTROL)
    expect(control.length).toBe(r.encode(ContentType.delivered, body, first).length - Content.LINK_BYTES)
    const d = r.decode(control)
    expect(Content.is(d, ContentType.delivered) && d.body).toEqual(body)
    expect(d.link?.position).toBe(0)
  })

  test("an application's type is sent with its name and read back typed by a registry that knows it", () => {
    const sender = Content.make(Poll1)
    const bytes = sender.encode(Poll1, { question: "lunch?", options: ["yes", "no"] }, first)
    const d = Content.make(Poll1).decode(bytes)
    expect(Content.is(d, Poll1) && d.body).toEqual({ question: "lunch?", options: ["yes", "no"] })
  })

  test("an unknown type, a newer version or an older one not kept is Unsupported with what arrived", () => {
    const bytes2 = Content.make(Poll2).encode(Poll2, { question: "q", options: [], multiple: true }, first)
    const unknown = Content.make().decode(bytes2)
    expect(unknown).toMatchObject({ _tag: "Unsupported", name: "acme.poll", version: 2, reason: "unknown-type" })
    expect(JSON.parse(new TextDecoder().decode(unknown._tag === "Unsupported" ? unknown.body : new Uint8Array()))).toEqual({ question: "q", options: [], multiple: true })
    expect(Content.make(Poll1).decode(bytes2)).toMatchObject({ _tag: "Unsupported", reason: "newer-version", version: 2 })
    const bytes1 = Content.make(Poll1).encode(Poll1, { question: "q", options: [] }, first)
    expect(Content.make(Poll2).decode(bytes1)).toMatchObject({ _tag: "Unsupported", reason: "older-version", version: 1 })
    // a reader that keeps both versions reads both
    const both = Content.make(Poll1, Poll2)
    expect(Content.is(both.decode(bytes1), Poll1)).toBe(true)
    expect(Content.is(both.decode(bytes2), Poll2)).toBe(true)
  })

  test("a newer built-in version and an unknown built-in code are Unsupported", () => {
    const r = Content.make()
    const bytes = r.encode(ContentType.text, { text: "hi" }, first)
    const newer = bytes.slice()
    newer[11] = 2
    expect(r.decode(newer)).toMatchObject({ _tag: "Unsupported", name: "text", version: 2, reason: "newer-version" })
    const unknownCode = bytes.slice()
    unknownCode[10] = 99
    expect(r.decode(unknownCode)).toMatchObject({ _tag: "Unsupported", name: "#99", reason: "unknown-type" })
  })

  test("a field added as optional keeps the version: an old reader drops it, a new reader reads old messages", () => {
    const Old = ContentType.defineType("acme.note", 1, Schema.Struct({ note: Schema.String }))
    const New = ContentType.defineType("acme.note", 1, Schema.Struct({ note: Schema.String, colour: Schema.optional(Schema.String) }))
    const fromNew = Content.make(New).encode(New, { note: "n", colour: "red" }, first)
    expect(Content.make(Old).decode(fromNew)).toMatchObject({ _tag: "Content", body: { note: "n" } })
    const fromOld = Content.make(Old).encode(Old, { note: "n" }, first)
    expect(Content.make(New).decode(fromOld)).toMatchObject({ _tag: "Content", body: { note: "n" } })
  })

  test("a body that does not fit its schema is Unsupported (bad-body), not a throw", () => {
    const bytes = Content.make(Poll1).encode(Poll1, { question: "q", options: [] }, first)
    const Strict = ContentType.defineType("acme.poll", 1, Schema.Struct({ question: Schema.Number }))
    expect(Content.make(Strict).decode(bytes)).toMatchObject({ _tag: "Unsupported", reason: "bad-body" })
  })

  test("built-in names are reserved and bad definitions are refused", () => {
    expect(() => ContentType.defineType("text", 1, Schema.String)).toThrow()
    expect(() => ContentType.defineType("Acme", 1, Schema.String)).toThrow()
    expect(() => ContentType.defineType("acme.x", 0, Schema.String)).toThrow()
    expect(() => Content.make(Poll1, Poll1)).toThrow()
  })

  test("any bytes decode to Content or Unsupported, never a throw; the digest is of what arrived", () => {
    const r = Content.make(Poll1, Poll2)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const d = r.decode(bytes)
      expect(["Content", "Unsupported"]).toContain(d._tag)
      expect([...d.digest]).toEqual([...Content.digest(bytes)])
    }), { numRuns: 2000 })
  })

  test("encode then decode is the identity for any text and link", () => {
    const r = Content.make()
    fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 0xffff_ffff }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (text, position, previous) => {
      const d = r.decode(r.encode(ContentType.text, { text }, { position, previous }))
      expect(Content.is(d, ContentType.text) && d.body.text).toBe(text)
      expect(d.link?.position).toBe(position)
    }), { numRuns: 500 })
  })
})
