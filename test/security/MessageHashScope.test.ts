/**
 * Finding 13 of the security review, over real sockets: a `messageHash` was unique across the node, so
 * "Duplicate message" told anyone that a hash existed (an oracle on other people's messages), another
 * sender could never use it, and a sender reusing one of its hashes for another recipient was answered
 * as a retry while nothing was sent. Now a hash is unique per network and sender.
 */
import { describe, expect, test } from "bun:test"
import { nodeUnderTest } from "./nodeUnderTest.ts"
import { randomHash } from "../support/L2psClient.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { ask, encrypted, expectError, makeIdentity, newRequestId, requestFrame, sleep } from "../e2e/helpers.ts"

const UID = "default"
const REUSED = "Duplicate message: this messageHash was already sent to another recipient"

const send = (to: string, messageHash: string, ciphertext = "Y2lwaGVy") =>
  requestFrame("send", { to, encrypted: encrypted(ciphertext), messageHash }, newRequestId())

describe("messageHash scope over real sockets", () => {
  const { registered } = nodeUnderTest({ L2PS_NETWORKS: UID, L2PS_BATCH_INTERVAL_MS: "600000" }, UID)
  const messagesOf = (s: RawSocket.RawSocket) =>
    s.received.map((f) => JSON.parse(f.raw)).filter((f) => f.type === "message").map((f) => f.payload)


  test("another sender's hash is no oracle: the same hash from a second sender is sent, and both messages arrive", async () => {
    const alice = await registered()
    const bob = await registered(makeIdentity(), ["ack"])
    const mallory = await registered()
    const dave = await registered()
    const hash = randomHash()
    expect(await ask(alice.s, send(bob.key, hash, "YWxpY2U="))).toMatchObject({ type: "message_sent", payload: { messageHash: hash } })

    // Mallory probes the hash with Bob himself, Dave with Alice: no "Duplicate message", messages of theirs.
    expect(await ask(mallory.s, send(bob.key, hash, "bWFsbG9yeQ=="))).toMatchObject({ type: "message_sent", payload: { messageHash: hash } })
    expect(await ask(dave.s, send(alice.key, hash))).toMatchObject({ type: "message_sent", payload: { messageHash: hash } })
    await sleep(200)
    expect(messagesOf(bob.s).map((m) => [m.from, m.messageHash, m.encrypted.ciphertext])).toEqual([
      [alice.key, hash, "YWxpY2U="],
      [mallory.key, hash, "bWFsbG9yeQ=="]
    ])
    expect(messagesOf(alice.s).map((m) => [m.from, m.messageHash])).toEqual([[dave.key, hash]])

    // Proofs: each participant gets a message of its own; `from` picks among those sent to it; a third
    // party still gets "Message not found".
    const proof = async (s: RawSocket.RawSocket, payload: Record<string, unknown>) => {
      s.sendJson(requestFrame("proof_request", payload, newRequestId()))
      return s.nextOfType("proof_response")
    }
    const bobsFirst = await proof(bob.s, { messageHash: hash })
    const bobsFromAlice = await proof(bob.s, { messageHash: hash, from: alice.key })
    const bobsFromMallory = await proof(bob.s, { messageHash: hash, from: mallory.key })
    const alices = await proof(alice.s, { messageHash: hash })
    for (const p of [bobsFirst, bobsFromAlice, bobsFromMallory, alices]) expect(p).toMatchObject({ type: "proof_response", payload: { messageHash: hash } })
    expect(bobsFirst.payload.leaf).toBe(alices.payload.leaf)
    expect(bobsFromAlice.payload.leaf).toBe(alices.payload.leaf)
    expect(bobsFromMallory.payload.leaf).not.toBe(alices.payload.leaf)
    const stranger = await registered()
    expectError(await ask(stranger.s, requestFrame("proof_request", { messageHash: hash }, "p-s")), "PEER_NOT_FOUND", "Message not found", "p-s")

    // Bob acknowledges the hash: both senders get their receipt.
    bob.s.sendJson(requestFrame("ack", { messageHashes: [hash] }, "ack"))
    expect(await bob.s.nextOfType("ack_response")).toMatchObject({ type: "ack_response", payload: { messageHashes: [hash, hash] } })
    expect(await alice.s.nextOfType("message_delivered")).toMatchObject({ payload: { messageHash: hash } })
    expect(await mallory.s.nextOfType("message_delivered")).toMatchObject({ payload: { messageHash: hash } })
  })

  test("a sender reusing its hash for another recipient is refused, never silently dropped; a retry to the same recipient is not", async () => {
    const alice = await registered()
    const bob = await registered()
    const carol = await registered()
    const hash = randomHash()
    expect(await ask(alice.s, send(bob.key, hash))).toMatchObject({ type: "message_sent", payload: { messageHash: hash } })
    const reuse = send(carol.key, hash)
    expectError(await ask(alice.s, reuse), "INVALID_MESSAGE", REUSED, String(reuse["requestId"]))
    const retry = send(bob.key, hash)
    expect(await ask(alice.s, retry)).toMatchObject({ type: "message_sent", requestId: retry["requestId"], payload: { messageHash: hash } })
    await sleep(200)
    expect(messagesOf(carol.s)).toEqual([])
    expect(messagesOf(bob.s).map((m) => m.messageHash)).toEqual([hash])
  })
})
