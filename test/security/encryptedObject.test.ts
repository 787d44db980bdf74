/**
 * Finding 19 of the security review, over real sockets: only `ciphertext`, `nonce` and `ephemeralKey`
 * were size-checked, so anything else in `encrypted` (members of any name, repeated members, padding)
 * was stored and relayed unchecked up to the frame limit. Now `encrypted` holds only those three
 * members (what every real client writes: PROTOCOL-REFERENCE.md §3.2.6, src/client/L2psCrypto.ts) and its
 * text, as sent, is bounded as a whole.
 */
import { describe, expect, test } from "bun:test"
import { nodeUnderTest } from "./nodeUnderTest.ts"
import { generateIdentity, sealFor } from "../../src/client/L2psCrypto.ts"
import { maxEncryptedChars } from "../../src/relay/handlers/Send.ts"
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { ask, expectAlive, expectError, newRequestId, nextReply, sleep } from "../e2e/helpers.ts"

const UID = "default"
const MAX_CIPHERTEXT = 131_072
const MAX_ENCRYPTED = maxEncryptedChars(MAX_CIPHERTEXT)
const UNKNOWN = "Encrypted payload may only have ciphertext, nonce and ephemeralKey"
/** Nothing but presence reaches `s` for a while. */
const noMessage = async (s: RawSocket.RawSocket) => {
  await sleep(200)
  expect(s.drain().filter((f) => f.type !== "peer_joined" && f.type !== "peer_left")).toEqual([])
}
const TOO_LARGE = `Encrypted payload too large (max ${MAX_ENCRYPTED} characters as sent)`

describe("finding 19: the encrypted object is bounded as a whole and holds only known members (real sockets)", () => {
  const { registered } = nodeUnderTest({ L2PS_BATCH_INTERVAL_MS: "600000" }, UID)
  /** A send frame as raw text, so repeated members and padding reach the node as written. */
  const sendText = (to: string, encryptedJson: string, requestId: string, messageHash: string = randomHash()) =>
    `{"type":"send","payload":{"to":"${to}","encrypted":${encryptedJson},"messageHash":"${messageHash}"},"timestamp":${Date.now()},"requestId":"${requestId}"}`


  test("what real clients send is accepted and relayed unchanged, up to every member's own limit", async () => {
    const recipient = await registered()
    const { s } = await registered()
    const payloads: Array<Record<string, string>> = [
      // Our client: x25519 + AES-GCM, with the ephemeral key.
      { ...sealFor(generateIdentity(), recipient.key, "hello") },
      // The SDK's shape (channel transport): no ephemeralKey.
      { ...encryptedFor("hello") },
      // Every member at its limit: ciphertext 131072, nonce and ephemeralKey 4096 characters.
      { ciphertext: "A".repeat(MAX_CIPHERTEXT), nonce: "n".repeat(4096), ephemeralKey: "e".repeat(4096) }
    ]
    for (const encrypted of payloads) {
      const requestId = newRequestId()
      const messageHash = randomHash()
      const reply = await ask(s, { type: "send", payload: { to: recipient.key, encrypted, messageHash }, timestamp: Date.now(), requestId })
      expect(reply).toMatchObject({ type: "message_sent", requestId, payload: { messageHash } })
      const delivered = await recipient.s.nextOfType("message")
      expect(delivered.payload).toMatchObject({ messageHash, encrypted })
    }
  }, 60_000)

  test("an unknown member, whatever its name or value, gets INVALID_MESSAGE and is neither stored nor relayed", async () => {
    const recipient = await registered()
    const { s } = await registered()
    const base = '"ciphertext":"Y2lwaGVy","nonce":"bm9uY2Vub25jZW5v"'
    for (const extra of ['"extra":"x"', '"padding":"' + "p".repeat(100_000) + '"', '"__proto__":{"a":1}', '"Ciphertext":"Y2lw"', '"n":1', '"ephemeralkey":"ab"']) {
      const requestId = newRequestId()
      s.sendText(sendText(recipient.key, `{${base},${extra}}`, requestId))
      expectError(await nextReply(s), "INVALID_MESSAGE", UNKNOWN, requestId)
    }
    await expectAlive(s, true)
    await noMessage(recipient.s)
  }, 30_000)

  test(`encrypted written larger than ${MAX_ENCRYPTED} characters (repeated members, padding) gets INVALID_MESSAGE, within the frame limit`, async () => {
    const recipient = await registered()
    const { s } = await registered()
    const repeated = `{${`"nonce":"${"n".repeat(4000)}",`.repeat(36)}"ciphertext":"Y2lwaGVy","nonce":"bm9uY2Vub25jZW5v"}`
    const padded = `{"ciphertext":"Y2lwaGVy",${" ".repeat(MAX_ENCRYPTED)}"nonce":"bm9uY2Vub25jZW5v"}`
    for (const encryptedJson of [repeated, padded]) {
      expect(encryptedJson.length).toBeGreaterThan(MAX_ENCRYPTED)
      const requestId = newRequestId()
      const text = sendText(recipient.key, encryptedJson, requestId)
      expect(text.length).toBeLessThan(262_144)
      s.sendText(text)
      expectError(await nextReply(s), "INVALID_MESSAGE", TOO_LARGE, requestId)
    }
    await expectAlive(s, true)
    await noMessage(recipient.s)
  }, 30_000)
})
