/**
 * The send path keeps its hand-written check (`validate`, src/relay/handlers/Send.ts) for speed; the
 * `send` payload Schema (`sendPayload`, src/domain/Frames.ts) is the definition. Over generated frames,
 * valid, near-valid and hostile, they accept and refuse exactly the same ones.
 */
import { describe, expect, test } from "bun:test"
import fc from "fast-check"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { RequestError } from "../../src/domain/ErrorCode.ts"
import { MAX_ENCRYPTED_FIELD, MAX_MESSAGE_HASH, maxEncryptedChars, sendPayload } from "../../src/domain/Frames.ts"
import { validate } from "../../src/relay/handlers/Send.ts"

/** Small, so that every limit (the ciphertext's, and the whole object's) is reached by generated data. */
const MAX_CIPHERTEXT = 64
const SELF = "a".repeat(64)
const decode = Schema.decodeUnknownEither(sendPayload(MAX_CIPHERTEXT))

/** Characters that stay as they are, that JSON escapes (2 or 6 characters), astral ones and the unstorable. */
const char = fc.constantFrom("A", "z", "0", "=", "é", "\"", "\\", "\n", "\u0001", "\u{1F600}", "\u0000", "\ud800", "\udc00")

/** A string of about `len` characters (astral characters count two). */
const stringNear = (limit: number) =>
  fc.oneof(
    fc.constantFrom(0, 1, limit - 1, limit, limit + 1).chain((len) =>
      fc.oneof(
        fc.constant("x".repeat(Math.max(0, len))),
        fc.tuple(char, fc.nat(Math.max(0, len - 1))).map(([c, at]) => "x".repeat(at) + c + "x".repeat(Math.max(0, len - at - 1))),
        char.map((c) => c.repeat(Math.max(0, len)).slice(0, Math.max(0, len)))
      )
    ),
    fc.string({ unit: char, maxLength: 8 }),
    fc.base64String({ minLength: 4, maxLength: 24 })
  )

/** Not a string at all. */
const notString = fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]), fc.constant(["x"]))

const MISSING = Symbol("missing")
const member = <A>(arb: fc.Arbitrary<A>) => fc.oneof({ weight: 12, arbitrary: arb }, { weight: 1, arbitrary: notString }, { weight: 1, arbitrary: fc.constant(MISSING) })

const hex = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 })
const key = fc.oneof(
  { weight: 24, arbitrary: hex },
  hex.map((k) => k.toUpperCase()),
  fc.constant(SELF),
  fc.constant(SELF.toUpperCase()),
  hex.map((k) => k.slice(1)),
  hex.map((k) => k + "0"),
  hex.map((k) => "g" + k.slice(1)),
  hex.map((k) => ` ${k.slice(1)}`),
  fc.constant("")
)

const encrypted = fc.oneof(
  { weight: 8, arbitrary: fc.record({
    ciphertext: member(stringNear(MAX_CIPHERTEXT)),
    nonce: member(fc.oneof(fc.constant("bm9uY2U="), stringNear(MAX_ENCRYPTED_FIELD))),
    ephemeralKey: member(fc.oneof(fc.constant("ab"), fc.constant(""), stringNear(MAX_ENCRYPTED_FIELD))),
    // unknown members, the prototype's name among them (JSON.parse makes it an own member)
    extra: fc.oneof({ weight: 5, arbitrary: fc.constant(MISSING) }, fc.constantFrom("__proto__", "toString", "Ciphertext", "tag", "constructor"))
  }).map(({ extra, ...members }) => {
    const o: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(members)) if (v !== MISSING) o[k] = v
    if (extra !== MISSING) Object.defineProperty(o, extra, { value: "x", enumerable: true, writable: true, configurable: true })
    return o
  }) },
  { weight: 1, arbitrary: notString },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
)

const payload = fc.oneof(
  { weight: 12, arbitrary: fc.record({
    to: member(key),
    encrypted: fc.oneof({ weight: 8, arbitrary: encrypted }, { weight: 1, arbitrary: fc.constant(MISSING) }),
    messageHash: member(fc.oneof(hex, stringNear(MAX_MESSAGE_HASH))),
    // members a send does not read are allowed
    other: fc.oneof({ weight: 3, arbitrary: fc.constant(MISSING) }, fc.jsonValue({ maxDepth: 1 }))
  }).map((members) => {
    const o: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(members)) if (v !== MISSING) o[k] = v
    return o
  }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("to", "encrypted", "messageHash", "x"), fc.jsonValue({ maxDepth: 3 })) }
)

/** The frame as a client writes it, and its payload as the node reads it. */
const received = (p: Record<string, unknown>) => {
  const text = JSON.stringify({ type: "send", payload: p, timestamp: 1767225600000, requestId: "r1" })
  return { text, payload: (JSON.parse(text) as { payload: Record<string, unknown> }).payload }
}

const verdicts = (p: Record<string, unknown>) => {
  const { payload, text } = received(p)
  const byHand = !(validate(MAX_CIPHERTEXT, SELF, payload, text) instanceof RequestError)
  const decoded = decode(payload)
  const bySchema = Either.isRight(decoded) && decoded.right.to.toLowerCase() !== SELF
  return { byHand, bySchema }
}

describe("the send path's check and the send Schema", () => {
  test("accept and refuse the same payloads (fast-check)", () => {
    let accepted = 0
    fc.assert(
      fc.property(payload, (p) => {
        const { byHand, bySchema } = verdicts(p)
        if (byHand) accepted++
        return byHand === bySchema
      }),
      { seed: 20261204, numRuns: 4000 }
    )
    // Both sides of the boundary were reached, not only refusals.
    expect(accepted).toBeGreaterThan(200)
  })

  test("at and past each limit", () => {
    const ok = { to: "b".repeat(64), encrypted: { ciphertext: "Y2lw", nonce: "bm9uY2U=" }, messageHash: "h" }
    const cases: Array<[Record<string, unknown>, boolean]> = [
      [ok, true],
      [{ ...ok, to: "B".repeat(64) }, true],
      [{ ...ok, to: SELF.toUpperCase() }, false],
      [{ ...ok, messageHash: "h".repeat(MAX_MESSAGE_HASH) }, true],
      [{ ...ok, messageHash: "h".repeat(MAX_MESSAGE_HASH + 1) }, false],
      [{ ...ok, messageHash: "h\u0000" }, false],
      [{ ...ok, encrypted: { ...ok.encrypted, ciphertext: "c".repeat(MAX_CIPHERTEXT) } }, true],
      [{ ...ok, encrypted: { ...ok.encrypted, ciphertext: "c".repeat(MAX_CIPHERTEXT + 1) } }, false],
      [{ ...ok, encrypted: { ...ok.encrypted, ephemeralKey: "e".repeat(MAX_ENCRYPTED_FIELD) } }, true],
      [{ ...ok, encrypted: { ...ok.encrypted, ephemeralKey: "e".repeat(MAX_ENCRYPTED_FIELD + 1) } }, false],
      [{ ...ok, encrypted: { ...ok.encrypted, ephemeralKey: null } }, false],
      [{ ...ok, encrypted: { ...ok.encrypted, nonce: "\ud800" } }, false],
      // every member within its own limit, the whole past its own once escaped
      [{ ...ok, encrypted: { ciphertext: "c", nonce: "\u0001".repeat(MAX_ENCRYPTED_FIELD) } }, false],
      [{ ...ok, encrypted: { ciphertext: "c", nonce: "\"".repeat(MAX_ENCRYPTED_FIELD), ephemeralKey: "e" } }, true],
      [{ ...ok, encrypted: JSON.parse('{"ciphertext":"c","nonce":"n","__proto__":"x"}') }, false]
    ]
    // the case just within: each quote written as two characters
    expect(JSON.stringify({ ciphertext: "c", nonce: "\"".repeat(MAX_ENCRYPTED_FIELD), ephemeralKey: "e" }).length).toBeLessThanOrEqual(
      maxEncryptedChars(MAX_CIPHERTEXT)
    )
    for (const [p, accepted] of cases) expect({ p: JSON.stringify(p).slice(0, 120), ...verdicts(p) }).toEqual({ p: JSON.stringify(p).slice(0, 120), byHand: accepted, bySchema: accepted })
  })
})
