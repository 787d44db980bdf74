/**
 * The client frames of docs/PROTOCOL.md's examples, built from the vectors' keys. Run directly, it plays
 * them against an in-process node and prints every frame of both directions for the document.
 */
import { messageHashOf } from "../../src/client/L2psCrypto.ts"
import { x25519 } from "@noble/curves/ed25519.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { legacyChallengeMessage } from "../../src/domain/LegacyChallenge.ts"
import { type PrekeyKind, prekeySigningString } from "../../src/domain/Prekeys.ts"
import { inviteIdOf } from "../../src/client/Invite.ts"
import { inviteSigningString } from "../../src/domain/Invites.ts"
import { boundProofString, nodeIdOf } from "../../src/relay/BoundProof.ts"
import { runFlow } from "./ProtocolFlow.ts"
import { EXAMPLE_ENCRYPTED, edKey, edSign, legacyIdentity, mlDsaSign, nodeKey, T0 } from "./ProtocolVectors.ts"

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64")
const frame = (type: string, payload: unknown, timestamp?: number, requestId?: string) =>
  JSON.stringify({ type, payload, ...(timestamp === undefined ? {} : { timestamp }), ...(requestId === undefined ? {} : { requestId }) })

const legacyRegister = (clientId: string, byte: number, challenge?: { nonce: string; node: string }) => {
  const id = legacyIdentity(byte)
  return frame("register", {
    clientId,
    publicKey: Array.from(id.publicKey),
    verification: {
      algorithm: "ml-dsa",
      serializedSignedData: b64(mlDsaSign(id.publicKey, id.signingSecretKey)),
      serializedPublicKey: b64(id.signingPublicKey),
      serializedMessage: b64(id.publicKey)
    },
    ...(challenge === undefined ? {} : {
      challenge: {
        nonce: challenge.nonce,
        signature: b64(mlDsaSign(
          legacyChallengeMessage({ nodeKeyHex: challenge.node, clientId, nonce: challenge.nonce, publicKey: id.publicKey }),
          id.signingSecretKey
        ))
      }
    })
  })
}

/** bob's challenge-signed legacy registration, for the nonce the node gave. */
export const challengeRegister = (nonce: string, node: string) => legacyRegister("bob", 0x12, { nonce, node })

/**
 * bob's device 1 (registration id 4242): X25519 keys from 32 bytes of `byte`, ML-KEM-768 keys from 64,
 * each signed by bob's key (0x02), or by `signer`'s for the forged example.
 */
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const prekey = (kind: PrekeyKind, keyId: number, byte: number, signer = 0x02) => {
  const publicKey = kind === "spk" || kind === "opk"
    ? hex(x25519.getPublicKey(new Uint8Array(32).fill(byte)))
    : hex(ml_kem768.keygen(new Uint8Array(64).fill(byte)).publicKey)
  return { keyId, publicKey, signature: edSign(signer, prekeySigningString(kind, 1, 4242, keyId, publicKey)) }
}

export const LEGACY_MESSAGE = { algorithm: "ml-kem-aes", serializedCipherText: "Y3Q=", serializedEncryptedData: "ZGF0YQ==" }

/**
 * Alice's invite of the examples: the id from a secret of 16 bytes of 0x11; a record shortened to a few
 * bytes (a real one, which holds a device bundle with its ML-KEM key, is about 3,900 characters).
 */
const INVITE_ID = inviteIdOf(new Uint8Array(16).fill(0x11))
const INVITE_RECORD = "Ab3Xq0n2sQpAYd4v9WcT7lKj1mZ8uRy5hGfE6oNwVxI"
const INVITE_EXPIRES = T0 + 7 * 86_400_000

export const clientFrames = (): Record<string, string> => {
  const alice = edKey(0x01)
  const bob = edKey(0x02)
  const carol = edKey(0x03)
  const nodeId = nodeIdOf(nodeKey())
  const messageHash = messageHashOf(alice, bob, EXAMPLE_ENCRYPTED, T0)
  const toAlice = { ciphertext: "cmVwbHkgZm9yIGFsaWNl", nonce: "AQIDBAUGBwgJCgsM", ephemeralKey: bob }
  const toCarol = { ciphertext: "c2VjcmV0IGZvciBjYXJvbA==", nonce: "DAsKCQgHBgUEAwIB", ephemeralKey: carol }
  return {
    "l2ps/node_info": frame("node_info", {}, T0, "n1"),
    "l2ps/register-v1": frame("register", { publicKey: alice, l2psUid: "default", proof: edSign(0x01, `register:${alice}:${T0}`) }, T0, "r1"),
    "l2ps/register-v2": frame("register", {
      publicKey: bob,
      l2psUid: "default",
      proof: edSign(0x02, boundProofString("register", "default", nodeId, bob, T0 + 1)),
      proofVersion: 2,
      capabilities: ["ack"]
    }, T0 + 1, "b1"),
    "l2ps/discover": frame("discover", {}, T0, "r2"),
    "l2ps/discover-page": frame("discover", { limit: 1 }, T0, "r3"),
    "l2ps/discover-cursor": frame("discover", { cursor: "1", limit: 1 }, T0, "r4"),
    "l2ps/request_public_key": frame("request_public_key", { targetId: bob }, T0, "r5"),
    "l2ps/send": frame("send", { to: bob, encrypted: EXAMPLE_ENCRYPTED, messageHash }, T0, "r6"),
    "l2ps/ack": frame("ack", { messageHashes: [messageHash] }, T0, "b2"),
    "l2ps/send-offline": frame("send", { to: carol, encrypted: toCarol, messageHash: messageHashOf(alice, carol, toCarol, T0) }, T0, "r7"),
    "l2ps/register-carol": frame("register", { publicKey: carol, l2psUid: "default", proof: edSign(0x03, `register:${carol}:${T0 + 3}`) }, T0 + 3, "c1"),
    "l2ps/register-copies": frame("register", {
      publicKey: bob,
      l2psUid: "default",
      proof: edSign(0x02, `register:${bob}:${T0 + 4}`),
      capabilities: ["ack", "copies"]
    }, T0 + 4, "d1"),
    "l2ps/send-reply": frame("send", { to: alice, encrypted: toAlice, messageHash: messageHashOf(bob, alice, toAlice, T0) }, T0, "b6"),
    "l2ps/history": frame("history", { peerKey: bob, proof: edSign(0x01, `history:${bob}:${T0 + 2}`), limit: 20 }, T0 + 2, "r8"),
    "l2ps/proof_request": frame("proof_request", { messageHash }, T0, "r9"),
    "l2ps/send-self": frame("send", { to: alice, encrypted: EXAMPLE_ENCRYPTED, messageHash: "f".repeat(64) }, T0, "r10"),
    "l2ps/proof_request-from": frame("proof_request", { messageHash, from: alice }, T0, "b3"),
    "l2ps/prekeys_publish": frame("prekeys_publish", {
      deviceId: 1,
      registrationId: 4242,
      signedPreKey: prekey("spk", 1, 0x21),
      lastResortKem: prekey("lrk", 1, 0x22),
      oneTimePreKeys: [prekey("opk", 1, 0x23)],
      oneTimeKems: [prekey("okem", 1, 0x24)]
    }, T0, "p1"),
    "l2ps/bundle_fetch": frame("bundle_fetch", { publicKey: bob }, T0, "r11"),
    "l2ps/prekeys_count": frame("prekeys_count", { deviceId: 1 }, T0, "p2"),
    "l2ps/devices": frame("devices", {}, T0, "p3"),
    "l2ps/prekeys_publish-forged": frame("prekeys_publish", {
      deviceId: 1,
      registrationId: 4242,
      oneTimePreKeys: [prekey("opk", 2, 0x25, 0x01)]
    }, T0, "p4"),
    "l2ps/device_remove": frame("device_remove", { deviceId: 1 }, T0, "p5"),
    "l2ps/invite_store": frame("invite_store", {
      inviteId: INVITE_ID,
      record: INVITE_RECORD,
      expiresAt: INVITE_EXPIRES,
      oneTime: true,
      signature: edSign(0x01, inviteSigningString("default", INVITE_ID, INVITE_EXPIRES, true, INVITE_RECORD))
    }, T0, "i1"),
    "l2ps/invite_fetch": frame("invite_fetch", { inviteId: INVITE_ID }, T0, "b4"),
    "l2ps/invite_fetch-again": frame("invite_fetch", { inviteId: INVITE_ID }, T0, "b5"),
    "l2ps/invite_delete": frame("invite_delete", { inviteId: INVITE_ID }, T0, "i2"),
    "legacy/register": legacyRegister("alice", 0x11),
    "legacy/challenge": frame("challenge", {}),
    "legacy/register-carol": legacyRegister("carol", 0x13),
    "legacy/discover": frame("discover", {}),
    "legacy/request_public_key": frame("request_public_key", { targetId: "bob" }),
    "legacy/message": frame("message", { targetId: "bob", message: LEGACY_MESSAGE }),
    "legacy/message-offline": frame("message", { targetId: "carol", message: LEGACY_MESSAGE }),
    "legacy/debug_question": frame("debug_question", {}),
    "legacy/peer_response": frame("peer_response", { questionId: "00000000-0000-4000-8000-000000000000", response: "TypeScript" }),
    "legacy/request_public_key-unknown": frame("request_public_key", { targetId: "nobody" })
  }
}

if (import.meta.main) {
  const frames = clientFrames()
  let challenged = ""
  const received = await runFlow(frames, (nonce, node) => (challenged = challengeRegister(nonce, node)))
  for (const [name, text] of Object.entries(frames)) console.log(`C ${name}\n${JSON.stringify(JSON.parse(text), null, 2)}\n`)
  console.log(`C legacy/register-challenge\n${JSON.stringify(JSON.parse(challenged), null, 2)}\n`)
  for (const r of received) console.log(`S ${r.server} ${r.to}\n${JSON.stringify(JSON.parse(r.text), null, 2)}\n`)
}
