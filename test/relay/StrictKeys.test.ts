/**
 * Finding 11 of the security review: a small-order ed25519 key verifies forged signatures (all zeros),
 * so it would register as a shared "anyone" identity; a non-canonical encoding is a second name for
 * another key. Both are refused at registration, and both verifiers (native and noble) refuse them.
 */
import { describe, expect, test } from "bun:test"
import { Clock, Effect, TestClock } from "effect"
import * as nodeCrypto from "node:crypto"
import { ed25519 } from "@noble/curves/ed25519.js"
import * as Crypto from "../../src/crypto/Crypto.ts"
import { isStrictPublicKey } from "../../src/domain/Keys.ts"
import { peer, scenario } from "../support/TestNode.ts"

/** Small-order points (the zero of y, and its sign-bit twin): order 4. */
const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
]
/** y = p + 3, the non-canonical twin of the point whose key is 0300…00. */
const NON_CANONICAL = "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
const ZERO_SIGNATURE = "00".repeat(64)

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"))
const rawNativeVerify = (key: string, message: string, signature: string) =>
  nodeCrypto.verify(
    null,
    new TextEncoder().encode(message),
    nodeCrypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(key, "hex").toString("base64url") }, format: "jwk" }),
    bytes(signature)
  )

describe("strict ed25519 keys (security finding 11)", () => {
  test("a small-order key with an all-zero signature does not register", () =>
    scenario({}, Effect.gen(function*() {
      const key = SMALL_ORDER[0]!
      // A timestamp at which the runtime's own verifier accepts the forgery (about one in four do).
      const now = yield* Clock.currentTimeMillis
      let at = now
      while (!rawNativeVerify(key, `register:${key}:${at}`, ZERO_SIGNATURE)) at++
      yield* TestClock.adjust(at - now)
      const p = yield* peer()
      const reply = yield* p.request("register", { publicKey: key, l2psUid: "default", proof: ZERO_SIGNATURE }, { timestamp: at })
      expect(reply.type).toBe("error")
      expect(reply.payload).toEqual({
        code: "INVALID_MESSAGE",
        message: "Invalid publicKey: not the canonical encoding of an ed25519 key of full order"
      })
      // The session goes on.
      expect((yield* p.request("discover", {})).payload.code).toBe("REGISTRATION_REQUIRED")
    })))

  test("a non-canonical key encoding does not register", () =>
    scenario({}, Effect.gen(function*() {
      const p = yield* peer()
      const at = yield* Clock.currentTimeMillis
      const reply = yield* p.request("register", { publicKey: NON_CANONICAL, l2psUid: "default", proof: ZERO_SIGNATURE }, { timestamp: at })
      expect(reply.payload.code).toBe("INVALID_MESSAGE")
      expect(reply.payload.message).toContain("canonical")
    })))

  test("both verifiers refuse forged signatures for small-order keys, and non-canonical keys", () => {
    const native = Crypto.makeNative()
    for (const key of SMALL_ORDER) {
      for (let t = 0; t < 32; t++) {
        const message = new TextEncoder().encode(`register:${key}:${t}`)
        expect(native.verifyEd25519(bytes(key), message, bytes(ZERO_SIGNATURE))).toBe(false)
        expect(Crypto.noble.verifyEd25519(bytes(key), message, bytes(ZERO_SIGNATURE))).toBe(false)
      }
    }
    const message = new TextEncoder().encode("register:x:0")
    expect(native.verifyEd25519(bytes(NON_CANONICAL), message, bytes(ZERO_SIGNATURE))).toBe(false)
    expect(Crypto.noble.verifyEd25519(bytes(NON_CANONICAL), message, bytes(ZERO_SIGNATURE))).toBe(false)
  })

  test("the key check: every small-order point (either x sign) and every y >= p refused, real keys accepted", () => {
    const t = ed25519.Point.fromBytes(bytes(SMALL_ORDER[3]!))
    let point = ed25519.Point.ZERO
    for (let i = 0; i < 8; i++) {
      const b = point.toBytes()
      expect(isStrictPublicKey(b)).toBe(false)
      b[31] = b[31]! ^ 0x80
      expect(isStrictPublicKey(b)).toBe(false)
      point = point.add(t)
    }
    for (let d = 0; d < 19; d++) {
      for (const sign of [0, 0x80]) {
        const b = new Uint8Array(32).fill(0xff)
        b[0] = 0xed + d
        b[31] = 0x7f | sign
        expect(isStrictPublicKey(b)).toBe(false)
      }
    }
    for (let i = 0; i < 200; i++) expect(isStrictPublicKey(ed25519.getPublicKey(ed25519.utils.randomSecretKey()))).toBe(true)
  })
})
