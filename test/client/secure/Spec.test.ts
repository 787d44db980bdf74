/**
 * docs/PROTOCOL.md, "Secure sessions", followed by hand: a first message opened with the raw
 * primitives and the formulas the document gives (PQXDH, AD, the root and chain steps, the message
 * key, the header layout), and a safety number recomputed from its description. Another client that
 * implements the document reads our messages.
 */
import { expect, test } from "bun:test"
import { gcm } from "@noble/ciphers/aes.js"
import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import { hkdf } from "@noble/hashes/hkdf.js"
import { hmac } from "@noble/hashes/hmac.js"
import { sha256, sha512 } from "@noble/hashes/sha2.js"
import { hexToBytes } from "@noble/hashes/utils.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { generateIdentity } from "../../../src/client/L2psCrypto.ts"
import { bundleOf, createDevice } from "../../../src/client/secure/DeviceKeys.ts"
import { initiate } from "../../../src/client/secure/Pqxdh.ts"
import { encrypt } from "../../../src/client/secure/Ratchet.ts"
import { safetyNumber } from "../../../src/client/secure/SafetyNumber.ts"
import { T0, utf8 } from "./Conversation.ts"

const cat = (...parts: Array<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) out.set(p, at), (at += p.length)
  return out
}
const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)

/** The document's varint: unsigned LEB128. */
const readVarint = (b: Uint8Array, at: number): [number, number] => {
  let value = 0
  let scale = 1
  for (;;) {
    const byte = b[at++]!
    value += (byte & 0x7f) * scale
    if ((byte & 0x80) === 0) return [value, at]
    scale *= 128
  }
}

test("a first message opens with the document's formulas and the raw primitives", () => {
  const a = generateIdentity()
  const b = generateIdentity()
  const da = createDevice(a, { now: T0, deviceId: 300, registrationId: 123456 })
  const db = createDevice(b, { now: T0, deviceId: 5, registrationId: 654321 })
  const session = initiate(a, da, b.publicKey, bundleOf(db), T0)
  const bytes = encrypt(session, utf8("by the book"), T0).bytes

  // the layout table
  expect(bytes[0]).toBe(0x01)
  const flags = bytes[1]!
  expect(flags).toBe(0x01 | 0x02 | 0x04)
  let at = 2
  let device: number
  ;[device, at] = readVarint(bytes, at)
  expect(device).toBe(300)
  const ratchetKey = bytes.subarray(at, at + 32)
  at += 32
  const fields: Array<number> = []
  for (let i = 0; i < 3; i++) {
    let v: number
    ;[v, at] = readVarint(bytes, at)
    fields.push(v)
  }
  expect(fields).toEqual([0, 0, 0]) // n, pn, epoch
  const ids: Array<number> = []
  for (let i = 0; i < 5; i++) {
    let v: number
    ;[v, at] = readVarint(bytes, at)
    ids.push(v)
  }
  expect(ids).toEqual([123456, 654321, db.signedPreKey.keyId, db.oneTimeKems[0]!.keyId, db.oneTimePreKeys[0]!.keyId])
  const EK = bytes.subarray(at, at + 32)
  at += 32
  const CT = bytes.subarray(at, at + 1088)
  at += 1088
  const header = bytes.subarray(0, at)
  const body = bytes.subarray(at)

  // PQXDH on B's side
  const IKA = ed25519.utils.toMontgomery(hexToBytes(a.publicKey))
  const ikB = ed25519.utils.toMontgomerySecret(b.secretKey)
  const spk = db.signedPreKey.secretKey
  const dh = [x25519.getSharedSecret(spk, IKA), x25519.getSharedSecret(ikB, EK), x25519.getSharedSecret(spk, EK), x25519.getSharedSecret(db.oneTimePreKeys[0]!.secretKey, EK)]
  const SS = ml_kem768.decapsulate(CT, db.oneTimeKems[0]!.secretKey)
  const sk = hkdf(sha256, cat(new Uint8Array(32).fill(0xff), ...dh, SS), new Uint8Array(32), utf8("demos-im/pqxdh/v1|X25519|ML-KEM-768|SHA-256"), 64)
  const [RK0, PQ0] = [sk.subarray(0, 32), sk.subarray(32)]
  const AD = cat(utf8("demos-im/secure/v1"), hexToBytes(a.publicKey), u32(300), u32(123456), hexToBytes(b.publicKey), u32(5), u32(654321))

  // B's first receiving chain: a root step with its signed prekey against A's ratchet key
  const root = hkdf(sha256, x25519.getSharedSecret(spk, ratchetKey), RK0, utf8("demos-im/secure/v1/root"), 64)
  const CK = root.subarray(32)
  const seed = hmac(sha256, CK, Uint8Array.of(1))
  const mk = hkdf(sha256, seed, PQ0, utf8("demos-im/secure/v1/message"), 44)
  const plain = gcm(mk.subarray(0, 32), mk.subarray(32), cat(AD, header)).decrypt(body)
  expect(new TextDecoder().decode(plain)).toBe("by the book")
})

test("a safety number follows its description", () => {
  const a = generateIdentity().publicKey
  const b = generateIdentity().publicKey
  const half = (hex: string) => {
    const key = hexToBytes(hex)
    let h = sha512(cat(Uint8Array.of(0, 0), utf8("demos-im/safety-number/v1"), key))
    for (let i = 0; i < 5199; i++) h = sha512(cat(h, key))
    let digits = ""
    for (let i = 0; i < 6; i++) {
      const n = h.subarray(5 * i, 5 * i + 5).reduce((acc, byte) => acc * 256 + byte, 0)
      digits += String(n % 100_000).padStart(5, "0")
    }
    return digits
  }
  const [x, y] = [half(a), half(b)].sort()
  expect(safetyNumber(a, b).replaceAll(" ", "")).toBe(x! + y!)
})
