import { expect, test } from "bun:test"
import fc from "fast-check"
import { rawMember } from "../../src/domain/RawJson.ts"
import { encodeFrame, JsonText } from "../../src/domain/Frames.ts"
import { messageFrame } from "../../src/relay/handlers/Delivery.ts"
import { messageJson } from "../../src/relay/handlers/History.ts"
import { statusOf, type StoredMessage } from "../../src/storage/Storage.ts"

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

const encrypted = { ciphertext: "Y2lw\"aGVy", nonce: "bm9uY2U=", ephemeralKey: "ZQ==", extra: [1, { x: null }] }

test("a message frame around the payload's text is the frame the node would serialise", () => {
  const from = "a".repeat(64)
  const text = `{"type":"send","payload":{"to":"b","encrypted":  ${JSON.stringify(encrypted, null, 1)} ,"messageHash":"h\\u00e9"}}`
  const raw = rawMember(text, ["payload", "encrypted"])!
  for (const offline of [false, true]) {
    const frame = messageFrame(from, raw, "h\u00e9", offline, 1_764_000_000_123)
    expect(frame).toContain(raw)
    expect(JSON.parse(frame)).toEqual(JSON.parse(encodeFrame("message", { from, encrypted, messageHash: "h\u00e9", offline }, 1_764_000_000_123)))
    expect(Object.keys(JSON.parse(frame))).toEqual(["type", "payload", "timestamp"])
  }
})

test("a stored message in a history page: its payload spliced in as stored, the rest as serialised", () => {
  // jsonb's text form, as Postgres returns `encrypted::text`.
  const stored = '{"nonce": "bm9uY2U=", "extra": [1, {"x": null}], "ciphertext": "Y2lw\\"aGVy", "ephemeralKey": "ZQ=="}'
  const m: StoredMessage = {
    id: "7", l2psUid: "net\u2028", from: "a".repeat(64), to: "b".repeat(64), messageHash: "h\"1", encryptedJson: stored,
    timestamp: 1_764_000_000_000, deliveryStatus: "sent", l2psStatus: "l2ps_batched", l2psTxHash: null
  }
  const { encryptedJson: _, ...rest } = m
  const page = encodeFrame("history_response", new JsonText(`{"messages":[${messageJson(m)},${messageJson(m)}],"hasMore":true}`), 5, "r\"1")
  expect(page).toContain(stored)
  const wire = { ...rest, encrypted, status: statusOf(m) }
  expect(JSON.parse(page)).toEqual({ type: "history_response", payload: { messages: [wire, wire], hasMore: true }, timestamp: 5, requestId: "r\"1" })
  expect(Object.keys(JSON.parse(page).payload.messages[0])).toEqual([
    "id", "from", "to", "messageHash", "encrypted", "l2psUid", "l2psTxHash", "timestamp", "status", "deliveryStatus", "l2psStatus"
  ])
  expect(encodeFrame("x", new JsonText("[1]"), 9)).toBe('{"type":"x","payload":[1],"timestamp":9}')
})
