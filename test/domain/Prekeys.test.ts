import { expect, test } from "bun:test"
import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { bytesToHex, hexToBytes } from "../../src/domain/Keys.ts"
import {
  BundleResponse,
  DeviceBundle,
  isMlKem768PublicKeyHex,
  keyBytesOf,
  PrekeysPublishPayload,
  prekeySigningString,
  MAX_PUBLISH_ONE_TIME_KEMS
} from "../../src/domain/Prekeys.ts"

const account = ed25519.utils.randomSecretKey()
const accountKey = bytesToHex(ed25519.getPublicKey(account))
const sign = (kind: "spk" | "lrk" | "opk" | "okem", deviceId: number, registrationId: number, keyId: number, publicKey: string) =>
  bytesToHex(ed25519.sign(new TextEncoder().encode(prekeySigningString(kind, deviceId, registrationId, keyId, publicKey)), account))

const spkHex = bytesToHex(x25519.getPublicKey(x25519.utils.randomSecretKey()))
const lrkHex = bytesToHex(ml_kem768.keygen().publicKey)

test("the signing string is the agreed one, byte for byte", () => {
  expect(prekeySigningString("okem", 7, 12345, 0, "ab01")).toBe("demos-im/prekey/v1|okem|7|12345|0|ab01")
  expect(keyBytesOf("spk")).toBe(32)
  expect(keyBytesOf("opk")).toBe(32)
  expect(keyBytesOf("lrk")).toBe(1184)
  expect(keyBytesOf("okem")).toBe(1184)
})

test("a signature binds kind, device, installation and key id", () => {
  const sig = sign("spk", 1, 99, 5, spkHex)
  const verify = (kind: "spk" | "opk", deviceId: number, registrationId: number, keyId: number) =>
    ed25519.verify(hexToBytes(sig), new TextEncoder().encode(prekeySigningString(kind, deviceId, registrationId, keyId, spkHex)), hexToBytes(accountKey))
  expect(verify("spk", 1, 99, 5)).toBe(true)
  expect(verify("opk", 1, 99, 5)).toBe(false)
  expect(verify("spk", 2, 99, 5)).toBe(false)
  expect(verify("spk", 1, 98, 5)).toBe(false)
  expect(verify("spk", 1, 99, 6)).toBe(false)
})

const decodeBundle = Schema.decodeUnknownEither(DeviceBundle)
const bundle = {
  deviceId: 1,
  registrationId: 99,
  signedPreKey: { keyId: 1, publicKey: spkHex, signature: sign("spk", 1, 99, 1, spkHex) },
  lastResortKem: { keyId: 1, publicKey: lrkHex, signature: sign("lrk", 1, 99, 1, lrkHex) }
}

test("a bundle: one-time keys optional, sizes and ranges checked", () => {
  expect(Either.isRight(decodeBundle(bundle))).toBe(true)
  expect(Either.isRight(decodeBundle({ ...bundle, oneTimePreKey: bundle.signedPreKey, oneTimeKem: bundle.lastResortKem }))).toBe(true)
  // an X25519 key where an ML-KEM key belongs, and the reverse
  expect(Either.isLeft(decodeBundle({ ...bundle, lastResortKem: { ...bundle.lastResortKem, publicKey: spkHex } }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, signedPreKey: { ...bundle.signedPreKey, publicKey: lrkHex } }))).toBe(true)
  // upper-case hex, a short signature, ids out of range
  expect(Either.isLeft(decodeBundle({ ...bundle, signedPreKey: { ...bundle.signedPreKey, publicKey: `A${spkHex.slice(1)}` } }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, signedPreKey: { ...bundle.signedPreKey, signature: "00".repeat(63) } }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, deviceId: 0 }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, deviceId: 2 ** 31 }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, registrationId: 1.5 }))).toBe(true)
  expect(Either.isRight(decodeBundle({ ...bundle, signedPreKey: { ...bundle.signedPreKey, keyId: 0 } }))).toBe(true)
  expect(Either.isLeft(decodeBundle({ ...bundle, signedPreKey: { ...bundle.signedPreKey, keyId: -1 } }))).toBe(true)
  expect(Either.isRight(Schema.decodeUnknownEither(BundleResponse)({ publicKey: accountKey, devices: [bundle] }))).toBe(true)
})

test("a publish carries at most a batch of each kind", () => {
  const decode = Schema.decodeUnknownEither(PrekeysPublishPayload)
  expect(Either.isRight(decode({ deviceId: 1, registrationId: 99, oneTimeKems: [] }))).toBe(true)
  const kems = Array.from({ length: MAX_PUBLISH_ONE_TIME_KEMS + 1 }, () => bundle.lastResortKem)
  expect(Either.isLeft(decode({ deviceId: 1, registrationId: 99, oneTimeKems: kems }))).toBe(true)
  expect(Either.isRight(decode({ deviceId: 1, registrationId: 99, oneTimeKems: kems.slice(1) }))).toBe(true)
})

test("the ML-KEM-768 modulus check: a real key passes; a coefficient of q or more fails, as encapsulation does", () => {
  for (let i = 0; i < 5; i++) expect(isMlKem768PublicKeyHex(bytesToHex(ml_kem768.keygen().publicKey))).toBe(true)
  const key = ml_kem768.keygen().publicKey
  const withCoefficient = (at: number, value: number) => {
    const k = Uint8Array.from(key)
    const i = Math.floor(at / 2) * 3
    if (at % 2 === 0) {
      k[i] = value & 0xff
      k[i + 1] = (k[i + 1]! & 0xf0) | (value >> 8)
    } else {
      k[i + 1] = (k[i + 1]! & 0x0f) | ((value & 0x0f) << 4)
      k[i + 2] = value >> 4
    }
    return k
  }
  for (const [at, value, ok] of [[0, 3328, true], [0, 3329, false], [767, 3328, true], [767, 4095, false], [301, 3329, false]] as const) {
    const k = withCoefficient(at, value)
    expect(isMlKem768PublicKeyHex(bytesToHex(k))).toBe(ok)
    if (!ok) expect(() => ml_kem768.encapsulate(k)).toThrow()
  }
  // the 32-byte seed after the coefficients is not checked; sizes are
  expect(isMlKem768PublicKeyHex(bytesToHex(key) + "00")).toBe(false)
})
