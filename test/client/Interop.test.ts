/**
 * Byte compatibility with the real @kynesyslabs/demosdk 2.9.1 encryption (installed by
 * test/interop/setup-sdk.sh): its `UnifiedCrypto` (named instances, so no shared singleton) against
 * `MlKemAes`, in both directions. The same SDK over the wire is in Peers.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import * as MlKemAes from "../../src/client/MlKemAes.ts"
import { ensureSdk, seedOf } from "../interop/SdkClient.ts"

const SDK = new URL("../interop/.sdk/demosdk/build/", import.meta.url).href

let sdk: {
  instance: (id: string, seed: Uint8Array) => any
  serialize: (u8: Uint8Array) => string
  deserialize: (b64: string) => Uint8Array
  verifyMlDsa: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => Promise<boolean>
}

const newSdkIdentity = async (name: string) => {
  const seed = new Uint8Array(seedOf(name))
  const uc = sdk.instance(`client-interop-${name}`, seed)
  await uc.generateIdentity("ml-kem-aes", seed)
  await uc.generateIdentity("ml-dsa", seed)
  return { uc, seed, kem: await uc.getIdentity("ml-kem-aes"), dsa: await uc.getIdentity("ml-dsa") }
}

beforeAll(async () => {
  ensureSdk()
  const uc = await import(SDK + "encryption/unifiedCrypto.js")
  const ser = await import(SDK + "utils/uint8Serialize.js")
  const enigma = await import(SDK + "encryption/PQC/enigma.js")
  sdk = {
    instance: (id, seed) => uc.getUnifiedCryptoInstance(id, seed),
    serialize: ser.serializeUint8Array,
    deserialize: ser.deserializeUint8Array,
    verifyMlDsa: (s, m, p) => enigma.Enigma.verify_ml_dsa(s, m, p)
  }
}, 60_000)

describe("ml-kem-aes against the real SDK 2.9.1", () => {
  test("the same master seed gives the SDK's ML-KEM-768 and ML-DSA-65 keys, byte for byte", async () => {
    const s = await newSdkIdentity("keys")
    const ours = MlKemAes.legacyKeysFromSeed(s.seed)
    expect(Buffer.from(ours.kem.publicKey).equals(Buffer.from(s.kem.publicKey))).toBe(true)
    expect(Buffer.from(ours.kem.secretKey).equals(Buffer.from(s.kem.privateKey))).toBe(true)
    expect(Buffer.from(ours.dsa.publicKey).equals(Buffer.from(s.dsa.publicKey))).toBe(true)
  })

  test("SDK encrypts → we decrypt (as it serialises for the wire)", async () => {
    const sender = await newSdkIdentity("sdk-sender")
    const me = MlKemAes.legacyKeysFromSeed(MlKemAes.newMasterSeed())
    for (const text of ["hi", "ünïcødé ✓ and a longer line ".repeat(20), ""]) {
      const e = await sender.uc.encrypt("ml-kem-aes", new TextEncoder().encode(text), me.kem.publicKey)
      const wire = { algorithm: "ml-kem-aes", serializedCipherText: sdk.serialize(e.cipherText), serializedEncryptedData: sdk.serialize(e.encryptedData) }
      expect(new TextDecoder().decode(MlKemAes.decryptSerialized(me.kem.secretKey, wire))).toBe(text)
    }
  })

  test("we encrypt → SDK decrypts", async () => {
    const recipient = await newSdkIdentity("sdk-recipient")
    for (const text of ["hello SDK", "x".repeat(5000)]) {
      const wire = MlKemAes.encryptSerialized(recipient.kem.publicKey, text)
      const plain = await recipient.uc.decrypt({
        algorithm: wire.algorithm,
        cipherText: sdk.deserialize(wire.serializedCipherText),
        encryptedData: sdk.deserialize(wire.serializedEncryptedData)
      })
      expect(new TextDecoder().decode(plain)).toBe(text)
    }
  })

  test("registration proofs verify both ways (ML-DSA-65, noble 0.4.1 in the SDK vs 0.7.1 here)", async () => {
    const s = await newSdkIdentity("proofs")
    const ours = MlKemAes.legacyKeysFromSeed(s.seed)
    const proof = MlKemAes.registrationProof(ours)
    expect(await sdk.verifyMlDsa(sdk.deserialize(proof.serializedSignedData), ours.kem.publicKey, ours.dsa.publicKey)).toBe(true)
    const signed = await s.uc.sign("ml-dsa", s.kem.publicKey)
    expect(ml_dsa65.verify(signed.signature, s.kem.publicKey, signed.publicKey)).toBe(true)
  })
})
