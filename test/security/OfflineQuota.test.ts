/**
 * Finding 7 of the security review over real sockets, on a node started as a user starts it with the
 * byte quotas set in its environment: one key queuing to fresh keys, and throwaway keys queuing on one
 * victim, are both stopped with RATE_LIMITED while everyone else goes on.
 */
import { describe, expect, test } from "bun:test"
import { nodeUnderTest } from "./nodeUnderTest.ts"
import { ask, encrypted, expectError, makeIdentity, newRequestId, requestFrame } from "../e2e/helpers.ts"

const UID = "default"
/** A queued message's weight: its payload's JSON text plus 1 KiB (README). */
const W = JSON.stringify(encrypted()).length + 1024
const PER_SENDER = 5 * W
const PER_RECIPIENT = 8 * W

const send = (to: string) => requestFrame("send", { to, encrypted: encrypted(), messageHash: crypto.randomUUID() }, newRequestId())

describe("offline byte quotas over real sockets", () => {
  const { registered } = nodeUnderTest({
    L2PS_NETWORKS: UID,
    OFFLINE_BYTES_PER_SENDER: String(PER_SENDER),
    OFFLINE_BYTES_PER_RECIPIENT: String(PER_RECIPIENT)
  }, UID)

  test("one key queuing to fresh keys stops at OFFLINE_BYTES_PER_SENDER; its live messages still go", async () => {
    const a = await registered()
    for (let i = 0; i < 5; i++) expect(await ask(a.s, send(makeIdentity().publicKey))).toMatchObject({ type: "message_queued" })
    const over = send(makeIdentity().publicKey)
    expectError(await ask(a.s, over), "RATE_LIMITED", `Offline message limit reached (${PER_SENDER} bytes waiting from this sender)`, String(over["requestId"]))
    const online = await registered()
    expect(await ask(a.s, send(online.key))).toMatchObject({ type: "message_sent" })
  })

  test("throwaway keys filling one victim stop at OFFLINE_BYTES_PER_RECIPIENT; other recipients are served", async () => {
    const victim = makeIdentity().publicKey
    const keys = [await registered(), await registered(), await registered()]
    for (const k of keys) for (let i = 0; i < (k === keys[2] ? 2 : 3); i++) expect(await ask(k.s, send(victim))).toMatchObject({ type: "message_queued" })
    const over = send(victim)
    expectError(await ask(keys[2]!.s, over), "RATE_LIMITED", `Offline message limit reached (${PER_RECIPIENT} bytes waiting for this recipient)`, String(over["requestId"]))
    expect(await ask(keys[2]!.s, send(makeIdentity().publicKey))).toMatchObject({ type: "message_queued" })
  })
})
