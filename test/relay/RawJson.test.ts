import { expect, test } from "bun:test"
import fc from "fast-check"
import { rawMember } from "../../src/domain/RawJson.ts"
import { liveMessageFrame, messageFrame } from "../../src/relay/handlers/Delivery.ts"

test("rawMember: the member's own text, as JSON.parse reads it", () => {
  const text = ' { "type" : "send", "payload" : { "to":"ab", "encrypted" :{"ciphertext":"x\\"}y","nonce":"n" } , "n":[1,{"a":2}] } } '
  expect(rawMember(text, ["payload", "encrypted"])).toBe('{"ciphertext":"x\\"}y","nonce":"n" }')
  expect(rawMember(text, ["payload", "n"])).toBe('[1,{"a":2}]')
  expect(rawMember(text, ["type"])).toBe('"send"')
  expect(rawMember(text, ["payload", "missing"])).toBeUndefined()
  expect(rawMember(text, ["type", "x"])).toBeUndefined()
  // Repeated keys: the last one; escaped key names count as their value.
  expect(rawMember('{"a":1,"a":{"b":true}}', ["a"])).toBe('{"b":true}')
  expect(rawMember('{"\\u0061":5}', ["a"])).toBe("5")
  expect(rawMember("{}", ["a"])).toBeUndefined()
})

test("rawMember agrees with JSON.parse on any document (fast-check)", () => {
  const key = fc.constantFrom("a", "b", "encrypted", "\u00e9", "")
  const doc = fc.dictionary(key, fc.dictionary(key, fc.jsonValue(), { maxKeys: 4 }), { maxKeys: 4 })
  fc.assert(
    fc.property(doc, fc.constantFrom(0, 2), key, key, (value, indent, k1, k2) => {
      const text = JSON.stringify(value, null, indent)
      const parsed = JSON.parse(text) as Record<string, Record<string, unknown>>
      const expected = Object.hasOwn(parsed, k1) && Object.hasOwn(parsed[k1]!, k2) ? parsed[k1]![k2] : undefined
      const raw = rawMember(text, [k1, k2])
      if (expected === undefined) return raw === undefined
      return raw !== undefined && JSON.stringify(JSON.parse(raw)) === JSON.stringify(expected)
    }),
    { seed: 20261126, numRuns: 2000 }
  )
})

test("a live message frame around the payload's text is the frame the node would serialise", () => {
  const from = "a".repeat(64)
  const encrypted = { ciphertext: "Y2lw\"aGVy", nonce: "bm9uY2U=", ephemeralKey: "ZQ==", extra: [1, { x: null }] }
  const text = `{"type":"send","payload":{"to":"b","encrypted":  ${JSON.stringify(encrypted, null, 1)} ,"messageHash":"h\\u00e9"}}`
  const raw = rawMember(text, ["payload", "encrypted"])!
  const live = liveMessageFrame(from, raw, "h\u00e9", 1_764_000_000_123)
  expect(JSON.parse(live)).toEqual(JSON.parse(messageFrame(from, encrypted, "h\u00e9", false, 1_764_000_000_123)))
  expect(Object.keys(JSON.parse(live))).toEqual(["type", "payload", "timestamp"])
})
