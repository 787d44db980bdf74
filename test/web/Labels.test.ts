/** What the web chat says: a message's way (queued, ✓, ✓✓, not sent and why), never going back, where it stands on the chain, why a link is refused. */
import { describe, expect, test } from "bun:test"
import { InviteError, type InviteErrorReason } from "../../src/client/Invite.ts"
import type { ChatRecord } from "../../src/web/page/ChatClient.ts"
import { chainStateOf, joinRefusal, newer, receiptOf, shortKey } from "../../src/web/page/Labels.ts"

const out = (status: ChatRecord["status"], extra: Partial<ChatRecord> = {}): ChatRecord => ({
  messageHash: "h1",
  peer: "b".repeat(64),
  direction: "out",
  text: "hi",
  at: 0,
  l2psUid: "default",
  status,
  ...extra
})

describe("receipts", () => {
  test("queued while in the outbox, ✓ once the node has it (live or kept for them), ✓✓ once delivered, ✗ with the reason when refused", () => {
    expect(receiptOf(out("sending"))).toEqual({ mark: "…", meaning: "queued: sent as soon as the node takes it", label: "queued" })
    expect(receiptOf(out("sent"))?.mark).toBe("✓")
    expect(receiptOf(out("queued"))).toEqual({ mark: "✓", meaning: "sent: the node keeps it until they are online" })
    expect(receiptOf(out("delivered"))?.mark).toBe("✓✓")
    expect(receiptOf(out("sent"))?.label).toBeUndefined()
    expect(receiptOf(out("delivered"))?.label).toBeUndefined()
    expect(receiptOf(out("failed", { error: "Offline message limit reached" }))).toEqual({
      mark: "✗",
      meaning: "not sent: Offline message limit reached",
      label: "not sent: Offline message limit reached"
    })
    expect(receiptOf({ ...out("received"), direction: "in" })).toBeUndefined()
  })

  test("a late event never takes a delivered message back to sent", () => {
    expect(newer(out("delivered"), out("sent")).status).toBe("delivered")
    expect(newer(out("sent"), out("delivered")).status).toBe("delivered")
    expect(newer(undefined, out("queued")).status).toBe("queued")
    expect(newer(out("sending"), out("failed")).status).toBe("failed")
  })
})

describe("on the chain", () => {
  const signer = "c".repeat(1952 * 2)

  test("confirmed only when the proof holds and the batch is final", () => {
    expect(chainStateOf({ valid: true, confirmed: true, status: "l2ps_confirmed", blockNumber: 65, signer })).toEqual({
      _tag: "Confirmed",
      text: `confirmed on chain (block 65) · inclusion proof checked ✓ · batch signed by node cccccc…cccc`
    })
    expect(chainStateOf({ valid: true, confirmed: false, status: "l2ps_batched", blockNumber: 64, signer })._tag).toBe("Waiting")
    expect(chainStateOf({ valid: false, confirmed: false, status: "l2ps_pending", reason: "not batched yet" })).toEqual({
      _tag: "Waiting",
      text: "waiting to be put in a batch"
    })
  })

  test("a proof that does not hold stops the wait and says why", () => {
    expect(chainStateOf({ valid: false, confirmed: false, status: "l2ps_confirmed", reason: "the leaf is not this message's hash" })).toEqual({
      _tag: "Failed",
      text: "proof does not hold: the leaf is not this message's hash"
    })
    expect(chainStateOf({ valid: false, confirmed: false, status: "l2ps_batched", reason: "the node sent no batch signature" })._tag).toBe("Failed")
  })

  test("keys are shortened to six and four hex digits", () => {
    expect(shortKey("0123456789abcdef".repeat(4))).toBe("012345…cdef")
    expect(shortKey("abc")).toBe("abc")
  })
})

describe("invite links refused", () => {
  test("each of the messenger's reasons has its own heading before the client's explanation", () => {
    const reasons: ReadonlyArray<InviteErrorReason> = ["Malformed", "Tampered", "Expired", "UsedUp", "NotFound", "Foreign", "Own"]
    const texts = reasons.map((reason) => joinRefusal(new InviteError({ reason, message: "why" })))
    expect(texts.map((t) => t.reason)).toEqual([...reasons])
    expect(new Set(texts.map((t) => t.text)).size).toBe(reasons.length)
    expect(texts.every((t) => /^cannot join \(.+\): why$/.test(t.text))).toBe(true)
    expect(joinRefusal(new InviteError({ reason: "UsedUp", message: "This one-time invite was used already" })).text)
      .toBe("cannot join (used already, or withdrawn): This one-time invite was used already")
  })

  test("anything else (the node away, a refusal) says what happened, with no invite reason", () => {
    expect(joinRefusal(new Error("Not registered"))).toEqual({ reason: "Error", text: "cannot join: Not registered" })
    expect(joinRefusal(Object.assign(new Error("odd"), { reason: "Bogus" }))).toEqual({ reason: "Error", text: "cannot join: odd" })
  })
})
