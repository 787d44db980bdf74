import { describe, expect, test } from "bun:test"
import { ed25519 } from "@noble/curves/ed25519.js"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Effect, Layer } from "effect"
import * as nodeCrypto from "node:crypto"
import * as Crypto from "../../src/crypto/Crypto.ts"
import * as MlDsa from "../../src/crypto/MlDsa.ts"
import { ValidatorPool, type VerifyRequest } from "../../src/validators/ValidatorPool.ts"
import * as ValidatorPoolLayers from "../../src/validators/ValidatorPool.ts"

const TIMEOUT = 60_000
const native = MlDsa.makeNative()

interface Case {
  readonly name: string
  readonly publicKey: Uint8Array
  readonly message: Uint8Array
  readonly signature: Uint8Array
  readonly valid: boolean
}

const flip = (b: Uint8Array, i: number) => {
  const c = b.slice()
  c[i % c.length]! ^= 1
  return c
}

/** Signatures by noble (as the 2.9.1 client makes them) and by the native signer, plus tampered copies. */
const cases = (): Array<Case> => {
  const out: Array<Case> = []
  for (let i = 0; i < 3; i++) {
    const { publicKey, secretKey } = ml_dsa65.keygen(new Uint8Array(32).fill(i + 1))
    const message = new Uint8Array(nodeCrypto.randomBytes(1184))
    const signature = ml_dsa65.sign(message, secretKey)
    out.push({ name: `noble #${i}`, publicKey, message, signature, valid: true })
    out.push({ name: `noble #${i} signature bit`, publicKey, message, signature: flip(signature, 100 * i + 7), valid: false })
    out.push({ name: `noble #${i} message bit`, publicKey, message: flip(message, i), signature, valid: false })
    out.push({ name: `noble #${i} key bit`, publicKey: flip(publicKey, 50 + i), message, signature, valid: false })
    out.push({ name: `noble #${i} truncated`, publicKey, message, signature: signature.slice(0, -1), valid: false })
  }
  const other = ml_dsa65.keygen(new Uint8Array(32).fill(99)).publicKey
  out.push({ name: "another key", publicKey: other, message: out[0]!.message, signature: out[0]!.signature, valid: false })
  out.push({ name: "empty", publicKey: new Uint8Array(0), message: new Uint8Array(0), signature: new Uint8Array(0), valid: false })
  if (typeof nodeCrypto.generateKeyPairSync === "function") {
    try {
      const pair = nodeCrypto.generateKeyPairSync("ml-dsa-65" as "ed25519")
      const jwk = pair.publicKey.export({ format: "jwk" }) as { pub?: string }
      const publicKey = new Uint8Array(Buffer.from(jwk.pub!, "base64url"))
      const message = new TextEncoder().encode("signed natively")
      const signature = new Uint8Array(nodeCrypto.sign(null, message, pair.privateKey))
      out.push({ name: "native signer", publicKey, message, signature, valid: true })
      out.push({ name: "native signer, tampered", publicKey, message, signature: flip(signature, 3), valid: false })
    } catch {
      // A runtime without native ML-DSA signing: the noble cases still apply.
    }
  }
  return out
}

describe("ML-DSA-65: native and portable implementations agree", () => {
  test("Bun has native ML-DSA, and the node prefers it", () => {
    expect(native).toBeDefined()
    expect(MlDsa.preferred().name).toBe("native")
  })

  test("node:crypto, WebCrypto and noble give the same verdict on valid and tampered signatures", async () => {
    const all = cases()
    expect(all.some((c) => c.name === "native signer")).toBe(true)
    for (const c of all) {
      const verdicts = {
        noble: MlDsa.noble(c.publicKey, c.message, c.signature),
        native: native!(c.publicKey, c.message, c.signature),
        webCrypto: await MlDsa.webCrypto(c.publicKey, c.message, c.signature)
      }
      expect({ name: c.name, ...verdicts }).toEqual({ name: c.name, noble: c.valid, native: c.valid, webCrypto: c.valid })
    }
  }, TIMEOUT)
})

const requests = (): Array<{ request: VerifyRequest; valid: boolean }> => {
  const out: Array<{ request: VerifyRequest; valid: boolean }> = cases().map((c) => ({
    request: { algorithm: "ml-dsa-65", publicKey: c.publicKey, message: c.message, signature: c.signature },
    valid: c.valid
  }))
  const secret = ed25519.utils.randomSecretKey()
  const publicKey = ed25519.getPublicKey(secret)
  const message = new TextEncoder().encode("register:key:1")
  const signature = ed25519.sign(message, secret)
  out.push({ request: { algorithm: "ed25519", publicKey, message, signature }, valid: true })
  out.push({ request: { algorithm: "ed25519", publicKey, message, signature: flip(signature, 1) }, valid: false })
  // ML-DSA material under the wrong algorithm name is refused, not confused.
  out.push({ request: { ...out[0]!.request, algorithm: "ed25519" }, valid: false })
  return out
}

describe("ValidatorPool", () => {
  const verifyAll = (layer: Layer.Layer<ValidatorPool>, rounds: number) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const pool = yield* ValidatorPool
      const work = Array.from({ length: rounds }, () => requests()).flat()
      const verdicts = yield* Effect.forEach(work, (w) => pool.verify(w.request), { concurrency: "unbounded" })
      return { expected: work.map((w) => w.valid), verdicts }
    }).pipe(Effect.provide(layer))))

  test("inline: ed25519 through the Crypto port, ML-DSA-65 natively", async () => {
    const { expected, verdicts } = await verifyAll(ValidatorPoolLayers.layerInline.pipe(Layer.provide(Crypto.layerNoble)), 1)
    expect(verdicts).toEqual(expected)
  }, TIMEOUT)

  test("workers: the same verdicts from Bun Workers, past a small bounded queue, then the pool stops", async () => {
    const layer = ValidatorPoolLayers.layerWorkers({ workers: 2, queueCapacity: 4, batchMax: 3, ed25519InWorkers: true })
    const { expected, verdicts } = await verifyAll(layer, 4)
    expect(verdicts.length).toBeGreaterThan(60)
    expect(verdicts).toEqual(expected)
  }, TIMEOUT)

  test("workers on the portable noble implementation give the same verdicts", async () => {
    const { expected, verdicts } = await verifyAll(ValidatorPoolLayers.layerWorkers({ workers: 2, mlDsa: "noble" }), 1)
    expect(verdicts).toEqual(expected)
  }, TIMEOUT)
})
