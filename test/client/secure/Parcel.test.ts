/** The parcel (docs/PROTOCOL.md, "Several devices"): parts round-trip; anything else is refused as malformed. */
import { expect, test } from "bun:test"
import { decodeParcel, encodeParcel, MAX_PARTS, type Part } from "../../../src/client/secure/Parcel.ts"
import { SecureError } from "../../../src/client/secure/SecureError.ts"

const parts: ReadonlyArray<Part> = [
  { owner: "recipient", deviceId: 1, envelope: Uint8Array.of(1, 2, 3) },
  { owner: "recipient", deviceId: 2 ** 31 - 1, envelope: new Uint8Array(300).fill(7) },
  // The sender's own device may carry the same id as a recipient's: the owner tells them apart.
  { owner: "sender", deviceId: 1, envelope: Uint8Array.of(9) }
]

const malformed = (bytes: Uint8Array) => {
  try {
    decodeParcel(bytes)
  } catch (e) {
    return e instanceof SecureError ? e.reason : "other"
  }
  return "opened"
}

test("parts round-trip, owner and device kept", () => {
  const bytes = encodeParcel(parts)
  expect(bytes[0]).toBe(0x02)
  expect(decodeParcel(bytes)).toEqual(parts)
})

test("another version, an unknown owner, a device named twice, a cut or trailing byte: malformed", () => {
  const bytes = encodeParcel(parts)
  expect(malformed(Uint8Array.of(0x01, ...bytes.subarray(1)))).toBe("Malformed")
  const owner = Uint8Array.from(bytes)
  owner[2] = 2
  expect(malformed(owner)).toBe("Malformed")
  expect(malformed(encodeParcel([parts[0]!, parts[0]!]))).toBe("Malformed")
  expect(malformed(bytes.subarray(0, bytes.length - 1))).toBe("Malformed")
  expect(malformed(Uint8Array.of(...bytes, 0))).toBe("Malformed")
  expect(malformed(Uint8Array.of(0x02, 0))).toBe("Malformed")
  expect(malformed(Uint8Array.of(0x02, MAX_PARTS + 1))).toBe("Malformed")
  expect(() => encodeParcel([])).toThrow()
})
