/**
 * The test vectors of docs/PROTOCOL.md, computed with the node's own functions from fixed inputs: the
 * generator prints them for the document, the test recomputes them and compares with what it says.
 */
import { ed25519 } from "@noble/curves/ed25519.js"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { messageHashOf } from "../../src/client/L2psCrypto.ts"
import { makeNative } from "../../src/crypto/Crypto.ts"
import * as NodeKey from "../../src/crypto/NodeKey.ts"
import { legacyChallengeMessage } from "../../src/domain/LegacyChallenge.ts"
import { canonicalJson, leafData, leafHash, path, root } from "../../src/domain/Merkle.ts"
import { anchorOf, GENESIS_BATCH_HASH } from "../../src/l2ps/Prover.ts"
import { messageHash as legacyMessageHash } from "../../src/legacy/handlers/Message.ts"
import { boundProofString, nodeIdOf } from "../../src/relay/BoundProof.ts"
import { sha256 } from "@noble/hashes/sha2.js"

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const utf8 = (s: string) => new TextEncoder().encode(s)
const sha256hex = (s: string) => hex(sha256(utf8(s)))
const crypto = makeNative()

/** 2026-01-01T00:00:00Z: the time of every example and vector. */
export const T0 = 1767225600000

export const seed = (byte: number) => new Uint8Array(32).fill(byte)
export const edKey = (byte: number) => hex(ed25519.getPublicKey(seed(byte)))
export const edSign = (byte: number, message: string) => hex(ed25519.sign(utf8(message), seed(byte)))

/** The node of the examples and vectors: ML-DSA-65 from 32 bytes of 0x07 (the test node's seed). */
export const NODE_SEED = seed(0x07)
export const nodeKey = () => NodeKey.fromSeed(NODE_SEED).publicKeyHex

/** The `encrypted` object of the example message (opaque to the node: any base64 does). */
export const EXAMPLE_ENCRYPTED = {
  ciphertext: "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
  nonce: "AAECAwQFBgcICQoL",
  ephemeralKey: "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
}

/** The legacy identities: ML-DSA-65 from 32 bytes of `byte`, and an ML-KEM-768-sized key of i*7+byte. */
export const legacyIdentity = (byte: number) => {
  const { publicKey, secretKey } = ml_dsa65.keygen(seed(byte))
  const kem = new Uint8Array(1184)
  for (let i = 0; i < kem.length; i++) kem[i] = (i * 7 + byte) & 0xff
  return { signingPublicKey: publicKey, signingSecretKey: secretKey, publicKey: kem }
}
export const mlDsaSign = (message: Uint8Array, secretKey: Uint8Array) => ml_dsa65.sign(message, secretKey, { extraEntropy: false })

/** The leaves of the example batch: five messages of network `default`, one ms apart (the fifth is promoted). */
export const batchMessages = () =>
  [0, 1, 2, 3, 4].map((i) => ({
    l2psUid: "default",
    messageHash: sha256hex(`message ${i}`),
    encrypted: { ciphertext: Buffer.from(`ciphertext ${i}`).toString("base64"), nonce: "AAECAwQFBgcICQoL" },
    timestamp: T0 + i
  }))

/**
 * Every vector by name, as the document prints it (one string each). The node's ML-DSA signatures are
 * hedged (not reproducible), so the document's own batch signature can be given to derive the rest from.
 */
export const computeVectors = (batchSignature?: string): Record<string, string> => {
  const alice = edKey(0x01)
  const bob = edKey(0x02)
  const node = nodeKey()
  const nodeId = nodeIdOf(node)
  const registerV1 = `register:${alice}:${T0}`
  const registerV2 = boundProofString("register", "default", nodeId, bob, T0 + 1)
  const history = `history:${bob}:${T0 + 2}`
  const msgHash = messageHashOf(alice, bob, EXAMPLE_ENCRYPTED, T0)
  const leafMessage = { l2psUid: "default", messageHash: msgHash, encrypted: EXAMPLE_ENCRYPTED, timestamp: T0 }
  const messages = batchMessages()
  const leaves = messages.map(leafHash)
  const header = { l2psUid: "default", seq: 1, root: root(leaves), size: leaves.length, prevBatchHash: GENESIS_BATCH_HASH, createdAt: T0 + 2000 }
  const batchHash = sha256hex(canonicalJson(header))
  const signature = batchSignature ?? hex(NodeKey.fromSeed(NODE_SEED).sign(Buffer.from(batchHash, "hex")))
  const { createdAt: _, ...anchored } = header
  const tx = anchorOf(crypto, { ...anchored, batchHash, signature, signer: node })
  const legacy = legacyIdentity(0x11)
  const challenge = legacyChallengeMessage({ nodeKeyHex: node, clientId: "alice", nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", publicKey: legacy.publicKey })
  const legacyMessage = { algorithm: "ml-kem-aes", serializedCipherText: "Y3Q=", serializedEncryptedData: "ZGF0YQ==" }
  return {
    "alice.seed": hex(seed(0x01)),
    "alice.publicKey": alice,
    "bob.seed": hex(seed(0x02)),
    "bob.publicKey": bob,
    "register.v1.string": registerV1,
    "register.v1.signature": edSign(0x01, registerV1),
    "node.seed": hex(NODE_SEED),
    "node.publicKey": node,
    "node.nodeId": nodeId,
    "register.v2.string": registerV2,
    "register.v2.signature": edSign(0x02, registerV2),
    "history.v1.string": history,
    "history.v1.signature": edSign(0x01, history),
    "message.encrypted": JSON.stringify(EXAMPLE_ENCRYPTED),
    "message.hashInput": JSON.stringify({ from: alice, to: bob, content: EXAMPLE_ENCRYPTED, timestamp: T0 }),
    "message.messageHash": msgHash,
    "leaf.data": new TextDecoder().decode(leafData(leafMessage)),
    "leaf.hash": leafHash(leafMessage),
    "batch.messages": JSON.stringify(messages),
    "batch.leaves": leaves.join("\n"),
    "batch.root": header.root,
    "batch.path2": JSON.stringify(path(leaves, 2)),
    "batch.path4": JSON.stringify(path(leaves, 4)),
    "batch.header": canonicalJson(header),
    "batch.batchHash": batchHash,
    "batch.signature": signature,
    "batch.anchor": canonicalJson(tx.payload),
    "batch.l2psTxHash": tx.hash,
    "legacy.signingPublicKey.sha256": hex(sha256(legacy.signingPublicKey)),
    "legacy.challenge.sha256": hex(sha256(challenge)),
    "legacy.messageHash": legacyMessageHash(crypto, { message: legacyMessage, senderId: "alice", targetId: "bob", timestamp: T0 })
  }
}

if (import.meta.main) {
  for (const [name, value] of Object.entries(computeVectors())) {
    console.log(`<!-- vector: ${name} -->\n\`\`\`text\n${value}\n\`\`\`\n`)
  }
}
