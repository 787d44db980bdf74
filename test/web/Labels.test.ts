/** What the web chat says about a message: receipts that never go back, and where it stands on the chain. */
import { describe, expect, test } from "bun:test"
import type { ChatRecord } from "../../src/web/page/ChatClient.ts"
import { chainStateOf, newer, receiptOf, shortKey } from "../../src/web/page/Labels.ts"

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
  test("✓ once the node has it (live or queued), ✓✓ once delivered, ✗ with the reason when refused", () => {
    expect(receiptOf(out("sending"))?.mark).toBe("…")
    expect(receiptOf(out("sent"))?.mark).toBe("✓")
    expect(receiptOf(out("queued"))).toEqual({ mark: "✓", meaning: "sent: the node keeps it until they are online" })
    expect(receiptOf(out("delivered"))?.mark).toBe("✓✓")
    expect(receiptOf(out("failed", { error: "Offline message limit reached" }))).toEqual({ mark: "✗", meaning: "not sent: Offline message limit reached" })
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
