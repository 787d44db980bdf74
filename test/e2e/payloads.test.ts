/**
 * Payload types and sealed receipts through a real node with real messengers: an application's type
 * goes through typed; a type the recipient does not know is Unsupported (kept, with what arrived) and
 * the next message still opens; with the recipient on two devices the sender learns from each, sealed,
 * that it has the message (docs/PROTOCOL.md, "Payload types" and "Receipts").
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import * as Schema from "effect/Schema"
import { defineType } from "../../src/client/content/ContentType.ts"
import { contentOf, payload } from "../../src/client/Messenger.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { startE2eNode, sleep, waitUntil } from "./helpers.ts"
import { messengers, ofTag, texts } from "./Messengers.ts"

const T = 60_000
const Poll = defineType("acme.poll", 1, Schema.Struct({ question: Schema.String, options: Schema.Array(Schema.String) }))
let node: NodeProcess
const clients = messengers()

beforeAll(async () => {
  node = await startE2eNode({ BUNDLE_FETCH_BURST: "1000", BUNDLE_FETCH_BURST_PER_ADDRESS: "1000" })
}, T)
afterEach(() => clients.closeAll())
afterAll(() => node?.stop())

describe("payload types and receipts through a real node", () => {
  test("an application's type is sent with the same call and received typed, also from the history", async () => {
    const alice = await clients.open(node.url, { types: [Poll] })
    const bob = await clients.open(node.url, { types: [Poll] })
    const poll = { question: "lunch?", options: ["noodles", "soup"] }
    const sent = await alice.m.send(bob.m.publicKey, payload(Poll, poll))
    expect(sent.content).toMatchObject({ type: "acme.poll", version: 1 })
    await waitUntil(() => ofTag(bob, "Received").length === 1, "the poll", 10_000)
    const got = ofTag(bob, "Received")[0]!
    expect(got.content?.type).toBe(Poll)
    expect(got.content?.body).toEqual(poll)
    const stored = (await bob.m.conversation(alice.m.publicKey)).find((r) => r.messageHash === sent.messageHash)!
    expect(contentOf(stored, Poll)).toEqual(poll)
    expect(ofTag(bob, "Unsupported")).toEqual([])
  }, T)

  test("a type the recipient does not know is Unsupported with what arrived, and the next message opens", async () => {
    const alice = await clients.open(node.url, { types: [Poll] })
    const bob = await clients.open(node.url, { missedGraceMs: 200 })
    await alice.m.send(bob.m.publicKey, payload(Poll, { question: "q", options: ["a"] }))
    await alice.m.send(bob.m.publicKey, "after the poll")
    await waitUntil(() => texts(bob).includes("after the poll"), "the next message", 10_000)
    const unsupported = ofTag(bob, "Unsupported")
    expect(unsupported).toHaveLength(1)
    expect(unsupported[0]).toMatchObject({ name: "acme.poll", version: 1, reason: "unknown-type" })
    expect(JSON.parse(new TextDecoder().decode(unsupported[0]!.body))).toEqual({ question: "q", options: ["a"] })
    // Kept, not lost: the record holds it for a later version of the app, and its place in the sequence counts.
    const kept = (await bob.m.conversation(alice.m.publicKey)).map((r) => [r.unsupported, r.content?.type, r.text])
    expect(kept).toEqual([["unknown-type", "acme.poll", ""], [undefined, undefined, "after the poll"]])
    await sleep(800)
    expect(ofTag(bob, "Missed")).toEqual([])
  }, T)

  test("with B on two devices, A gets two Delivered, one per device, from receipts sealed end to end", async () => {
    const alice = await clients.open(node.url)
    const b1 = await clients.open(node.url)
    const b2 = await clients.open(node.url, { dir: clients.secondDevice(b1) })
    expect(b2.m.deviceId).not.toBe(b1.m.deviceId)
    const sent = await alice.m.send(b1.m.publicKey, "to both of you")
    const perDevice = () => ofTag(alice, "Delivered").filter((e) => e.record.messageHash === sent.messageHash && e.device !== undefined)
    await waitUntil(() => perDevice().length === 2, "a receipt from each device", 10_000)
    await sleep(300)
    expect(perDevice().map((e) => e.device).sort()).toEqual([b1.m.deviceId!, b2.m.deviceId!].sort())
    const record = (await alice.m.conversation(b1.m.publicKey)).find((r) => r.messageHash === sent.messageHash)!
    expect(record.status).toBe("delivered")
    expect([...record.deliveredTo!].sort()).toEqual([b1.m.deviceId!, b2.m.deviceId!].sort())
    // Receipts are not messages: nothing shown on either side, and none confirmed in turn.
    expect(texts(alice)).toEqual([])
    expect(ofTag(b1, "Delivered")).toEqual([])
    expect(await b1.m.conversation(alice.m.publicKey)).toHaveLength(1)
  }, T)

  test("a recipient that turns sealed receipts off gives only the node's Delivered, naming no device", async () => {
    const alice = await clients.open(node.url)
    const bob = await clients.open(node.url, { sealedReceipts: false })
    const sent = await alice.m.send(bob.m.publicKey, "no receipt from me")
    await waitUntil(() => ofTag(alice, "Delivered").length > 0, "the node's receipt", 10_000)
    await sleep(500)
    expect(ofTag(alice, "Delivered").map((e) => [e.record.messageHash, e.device])).toEqual([[sent.messageHash, undefined]])
  }, T)
})
