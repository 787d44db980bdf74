/**
 * Finding 1 of the security review, over real sockets: a payload that `JSON.parse` accepts but Postgres
 * `jsonb` refuses (a `\u0000` escape, an unpaired surrogate escape, a number like 1e999999) used to fail
 * the whole group commit it shared, so every other sender in it got L2PS_SUBMIT_FAILED. Now such a send
 * is refused alone with INVALID_MESSAGE and the others are stored and delivered.
 */
import { describe, expect, test } from "bun:test"
import { nodeUnderTest } from "./nodeUnderTest.ts"
import { randomHash } from "../support/L2psClient.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { ask, encrypted, expectError, newRequestId, nextReply, waitUntil } from "../e2e/helpers.ts"

const UID = "default"

/** Poisoned `encrypted` objects, as raw JSON text, with the error each now gets. */
const POISONS: ReadonlyArray<{ readonly name: string; readonly json: string; readonly error: string }> = [
  {
    name: "a \\u0000 escape in the ciphertext",
    json: '{"ciphertext":"Y2lw\\u0000aGVy","nonce":"bm9uY2Vub25jZW5v"}',
    error: "Encrypted payload cannot be stored: it holds a \\u0000 escape (NUL)"
  },
  {
    name: "an unpaired surrogate escape in the nonce",
    json: '{"ciphertext":"Y2lwaGVy","nonce":"bm9uY2\\ud800Vub25jZW5v"}',
    error: "Encrypted payload cannot be stored: it holds an unpaired surrogate escape"
  },
  {
    name: "1e999999 in a repeated member (JSON.parse keeps the last, valid one)",
    json: '{"ciphertext":1e999999,"ciphertext":"Y2lwaGVy","nonce":"bm9uY2Vub25jZW5v"}',
    error: "Encrypted payload cannot be stored: it holds a number with an exponent beyond ±1000"
  },
  {
    name: "1e999999 in a member of its own",
    json: '{"ciphertext":"Y2lwaGVy","nonce":"bm9uY2Vub25jZW5v","padding":1e999999}',
    error: "Encrypted payload may only have ciphertext, nonce and ephemeralKey"
  }
]

const LEGIT_PER_SENDER = 5

describe("finding 1: one poisoned send no longer fails everyone's group commit (real sockets)", () => {
  const { registered } = nodeUnderTest({ L2PS_BATCH_INTERVAL_MS: "600000" }, UID)

  test("poisoned sends written among 20 legitimate ones: each poisoned one gets INVALID_MESSAGE, every legitimate one is stored and delivered", async () => {
    const recipient = await registered()
    const senders = await Promise.all(POISONS.map(() => registered()))
    // Every frame written at once, a poisoned one in the middle of each sender's burst: they reach the
    // node together and share its group commits.
    const expected: Array<{ s: RawSocket.RawSocket; requestId: string; messageHash: string; error?: string }> = []
    senders.forEach(({ s }, i) => {
      for (let n = 0; n <= LEGIT_PER_SENDER; n++) {
        const requestId = newRequestId()
        const messageHash = randomHash()
        if (n === 2) {
          s.sendText(`{"type":"send","payload":{"to":"${recipient.key}","encrypted":${POISONS[i]!.json},"messageHash":"${messageHash}"},"timestamp":${Date.now()},"requestId":"${requestId}"}`)
          expected.push({ s, requestId, messageHash, error: POISONS[i]!.error })
        } else {
          s.sendJson({ type: "send", payload: { to: recipient.key, encrypted: encrypted(), messageHash }, timestamp: Date.now(), requestId })
          expected.push({ s, requestId, messageHash })
        }
      }
    })
    for (const { s } of senders) {
      const mine = expected.filter((x) => x.s === s)
      // A refusal is answered at once, the sends committed before it once their commit ends.
      const replies = new Map<unknown, RawSocket.Frame>()
      while (replies.size < mine.length) {
        const f = await nextReply(s, 10_000)
        replies.set(f.requestId, f)
      }
      for (const e of mine) {
        const reply = replies.get(e.requestId)!
        if (e.error !== undefined) {
          expectError(reply, "INVALID_MESSAGE", e.error, e.requestId)
        } else {
          expect({ type: reply.type, requestId: reply.requestId, payload: reply.payload })
            .toEqual({ type: "message_sent", requestId: e.requestId, payload: { messageHash: e.messageHash, l2psStatus: "submitted" } })
        }
      }
    }
    const legit = expected.filter((e) => e.error === undefined).map((e) => e.messageHash)
    expect(legit.length).toBe(POISONS.length * LEGIT_PER_SENDER)
    const delivered: string[] = []
    await waitUntil(() => {
      for (const f of recipient.s.drain()) if (f.type === "message") delivered.push(String(f.payload?.messageHash))
      return delivered.length >= legit.length
    }, `${legit.length} deliveries`, 10_000)
    expect(delivered.sort()).toEqual([...legit].sort())
    // The senders' sessions go on.
    for (const { s } of senders) {
      const requestId = newRequestId()
      const messageHash = randomHash()
      const reply = await ask(s, { type: "send", payload: { to: recipient.key, encrypted: encrypted(), messageHash }, timestamp: Date.now(), requestId })
      expect(reply).toMatchObject({ type: "message_sent", requestId })
    }
  }, 60_000)

  test("a messageHash storage cannot hold as text (NUL, an unpaired surrogate) is refused", async () => {
    const recipient = await registered()
    const { s } = await registered()
    for (const messageHash of ["h\u0000" + randomHash(), "h\ud800" + randomHash()]) {
      const requestId = newRequestId()
      const reply = await ask(s, { type: "send", payload: { to: recipient.key, encrypted: encrypted(), messageHash }, timestamp: Date.now(), requestId })
      expectError(reply, "INVALID_MESSAGE", "messageHash must not contain NUL or unpaired surrogates", requestId)
    }
    const requestId = newRequestId()
    expect(await ask(s, { type: "send", payload: { to: recipient.key, encrypted: encrypted(), messageHash: randomHash() }, timestamp: Date.now(), requestId }))
      .toMatchObject({ type: "message_sent", requestId })
  }, 30_000)
})
