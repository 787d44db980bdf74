import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { expect, test } from "bun:test"
import * as NodeKey from "../../src/crypto/NodeKey.ts"

test("the node key is the ML-DSA-65 key of its seed, and its signatures verify with the portable code", () => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
  const key = NodeKey.fromSeed(seed)
  expect(key.publicKeyHex).toBe(Buffer.from(ml_dsa65.keygen(seed).publicKey).toString("hex"))
  const message = new TextEncoder().encode("batch header")
  const signature = key.sign(message)
  expect(signature.length).toBe(3309)
  expect(ml_dsa65.verify(signature, message, ml_dsa65.keygen(seed).publicKey)).toBe(true)
  expect(NodeKey.verify(key.publicKeyHex, message, Buffer.from(signature).toString("hex"))).toBe(true)
  expect(NodeKey.verify(key.publicKeyHex, new TextEncoder().encode("other"), Buffer.from(signature).toString("hex"))).toBe(false)
})
