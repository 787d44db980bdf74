/**
 * Sealed receipts riding on `ack` (capability "receipts") through a real node: forwarded in the sender's
 * `message_delivered` to the sessions that asked, from each device of the recipient; bounded; sessions
 * without the capability get today's frames; messengers get `Delivered` per device with no receipt
 * message on the wire (docs/PROTOCOL.md, "Receipts").
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { startRelayProxy } from "../support/RelayProxy.ts"
import { makeIdentity, PeerPool, sleep, startE2eNode, waitUntil } from "./helpers.ts"
import { messengers, ofTag, texts } from "./Messengers.ts"

const T = 60_000
const NET = "default"
let node: NodeProcess
const pool = new PeerPool()
const clients = messengers()
const stops: Array<() => void> = []

beforeAll(async () => {
  node = await startE2eNode({ BUNDLE_FETCH_BURST: "1000", BUNDLE_FETCH_BURST_PER_ADDRESS: "1000" })
}, T)
afterEach(async () => {
  pool.disconnectAll()
  await clients.closeAll()
  for (const stop of stops.splice(0)) stop()
})
afterAll(() => node?.stop())

const payloads = (frames: Array<Record<string, unknown>>) => frames.map((f) => f["payload"] as Record<string, unknown>)

describe("sealed receipts on acks through a real node", () => {
  test("each device's receipt reaches the sender's sessions that asked; others get today's message_delivered once", async () => {
    const alice = makeIdentity()
    const bob = makeIdentity()
    const a = await pool.connect(node.url, NET, { identity: alice, capabilities: ["ack", "receipts"] })
    const aPlain = await pool.connect(node.url, NET, { identity: alice })
    expect((a.registered as unknown as Record<string, unknown>)["capabilities"]).toEqual(["ack", "receipts"])
    expect("capabilities" in aPlain.registered).toBe(false)
    const b1 = await pool.connect(node.url, NET, { identity: bob, capabilities: ["ack", "receipts"] })
    const b2 = await pool.connect(node.url, NET, { identity: bob, capabilities: ["ack", "receipts"] })

    const hash = randomHash()
    await a.client.send(bob.publicKey, encryptedFor("to both devices"), hash)
    await b1.waitInbox(1)
    await b2.waitInbox(1)
    expect(await b1.client.ack([hash], { [hash]: "UjE=" })).toEqual({ messageHashes: [hash] })
    // The message is confirmed already: the second device's ack changes nothing but carries its receipt.
    expect(await b2.client.ack([hash], { [hash]: "UjI=" })).toEqual({ messageHashes: [] })
    await waitUntil(() => a.framesOfType("message_delivered").length === 2, "both receipts at alice", 5000)
    expect(payloads(a.framesOfType("message_delivered")).map((p) => [p["messageHash"], p["receipt"]])).toEqual([[hash, "UjE="], [hash, "UjI="]])
    await waitUntil(() => aPlain.framesOfType("message_delivered").length === 1, "the plain confirmation", 5000)
    await sleep(300)
    // Without the capability: exactly today's frame, once.
    expect(payloads(aPlain.framesOfType("message_delivered"))).toEqual([{ messageHash: hash, at: expect.any(Number) }])
    // No receipt became a message for anyone.
    expect(a.inbox).toEqual([])
    expect(aPlain.inbox).toEqual([])
  }, T)

  test("a receipt over 512 characters, or malformed, is refused with its reason while the ack still counts", async () => {
    const alice = makeIdentity()
    const bob = makeIdentity()
    const a = await pool.connect(node.url, NET, { identity: alice, capabilities: ["ack", "receipts"] })
    const b = await pool.connect(node.url, NET, { identity: bob, capabilities: ["ack", "receipts"] })
    const big = randomHash()
    const bad = randomHash()
    const stranger = randomHash()
    await a.client.send(bob.publicKey, encryptedFor("one"), big)
    await a.client.send(bob.publicKey, encryptedFor("two"), bad)
    await b.waitInbox(2)
    const reply = await b.client.ack([big, bad], { [big]: "A".repeat(513), [bad]: "not base64!", [stranger]: "AAAA" })
    expect(reply).toEqual({
      messageHashes: expect.arrayContaining([big, bad]),
      refusedReceipts: expect.arrayContaining([
        { messageHash: big, message: "a receipt must be at most 512 characters (this one has 513)" },
        { messageHash: bad, message: "a receipt must be a non-empty base64 string" },
        { messageHash: stranger, message: "a receipt must name a message of messageHashes" }
      ])
    })
    expect((reply["refusedReceipts"] as Array<unknown>).length).toBe(3)
    await waitUntil(() => a.framesOfType("message_delivered").length === 2, "both confirmations", 5000)
    // Confirmed, without the refused receipts; the session goes on.
    expect(payloads(a.framesOfType("message_delivered")).map((p) => "receipt" in p)).toEqual([false, false])
    const next = randomHash()
    await a.client.send(bob.publicKey, encryptedFor("three"), next)
    await b.waitInbox(3)
    expect(await b.client.ack([next], { [next]: "A".repeat(512) })).toEqual({ messageHashes: [next] })
    await waitUntil(() => a.framesOfType("message_delivered").length === 3, "the third confirmation", 5000)
    expect(payloads(a.framesOfType("message_delivered"))[2]!["receipt"]).toBe("A".repeat(512))
  }, T)

  test("a receipt for a sender with no session online is not kept: as with message_delivered, nothing comes later", async () => {
    const alice = makeIdentity()
    const a = await pool.connect(node.url, NET, { identity: alice, capabilities: ["ack", "receipts"] })
    const b = await pool.connect(node.url, NET, { capabilities: ["ack", "receipts"] })
    const hash = randomHash()
    await a.client.send(b.key, encryptedFor("then I leave"), hash)
    await b.waitInbox(1)
    a.client.disconnect()
    await waitUntil(() => b.left.includes(alice.publicKey), "alice gone", 5000)
    expect(await b.client.ack([hash], { [hash]: "bGF0ZQ==" })).toEqual({ messageHashes: [hash] })
    const back = await pool.connect(node.url, NET, { identity: alice, capabilities: ["ack", "receipts"] })
    await back.client.discover()
    await sleep(300)
    expect(back.framesOfType("message_delivered")).toEqual([])
    // The node keeps only that it was delivered, as before.
    const stored = (await back.client.history(b.key)).messages.find((m) => m.messageHash === hash)
    expect(stored?.deliveryStatus).toBe("delivered")
    expect(JSON.stringify(stored)).not.toContain("bGF0ZQ==")
  }, T)

  test("an SDK client without capabilities is unaffected: today's frames, no receipt members", async () => {
    const sdk = await pool.connect(node.url, NET, { capabilities: ["ack"] })
    const bob = await pool.connect(node.url, NET, { capabilities: ["ack", "receipts"] })
    const hash = randomHash()
    await sdk.client.send(bob.key, encryptedFor("hello"), hash)
    await bob.waitInbox(1)
    expect(await bob.client.ack([hash], { [hash]: "c2VhbGVk" })).toEqual({ messageHashes: [hash] })
    await waitUntil(() => sdk.framesOfType("message_delivered").length === 1, "the confirmation", 5000)
    await sleep(200)
    expect(sdk.framesOfType("message_delivered").map((f) => Object.keys(f["payload"] as object).sort())).toEqual([["at", "messageHash"]])
    expect(Object.keys(sdk.registered).sort()).toEqual(["l2psUid", "onlinePeers", "publicKey", "success"])
  }, T)

  test("messengers: B on two devices gives A two Delivered, one per device, with no receipt message on the wire", async () => {
    const toAlice: Array<Record<string, any>> = []
    const proxy = startRelayProxy(node.url, (f) => {
      toAlice.push(JSON.parse(f))
      return [f]
    })
    stops.push(() => proxy.stop())
    // Binary frames (the default): the relay shows them as the JSON frames they stand for.
    const alice = await clients.open(proxy.url)
    const b1 = await clients.open(node.url)
    const b2 = await clients.open(node.url, { dir: clients.secondDevice(b1) })
    const sent = await alice.m.send(b1.m.publicKey, "to both of you")
    const perDevice = () => ofTag(alice, "Delivered").filter((e) => e.record.messageHash === sent.messageHash && e.device !== undefined)
    await waitUntil(() => perDevice().length === 2, "a receipt from each device", 10_000)
    await sleep(300)
    expect(perDevice().map((e) => e.device).sort()).toEqual([b1.m.deviceId!, b2.m.deviceId!].sort())
    const record = (await alice.m.conversation(b1.m.publicKey)).find((r) => r.messageHash === sent.messageHash)!
    expect(record.status).toBe("delivered")
    // On the wire to A: two message_delivered with a receipt each, and no `message` frame at all.
    const delivered = toAlice.filter((f) => f["type"] === "message_delivered")
    expect(delivered.map((f) => [f["payload"]["messageHash"], typeof f["payload"]["receipt"]])).toEqual([
      [sent.messageHash, "string"],
      [sent.messageHash, "string"]
    ])
    expect(delivered.every((f) => f["payload"]["receipt"].length <= 512)).toBe(true)
    expect(toAlice.filter((f) => f["type"] === "message")).toEqual([])
    expect(texts(alice)).toEqual([])
    expect(ofTag(b1, "Delivered")).toEqual([])
    expect(await b1.m.conversation(alice.m.publicKey)).toHaveLength(1)
  }, T)

  test("on a node that does not grant the capability the messenger falls back to the receipt as a message", async () => {
    // B's node says nothing of "receipts" in `registered` (as a node before the capability).
    const proxy = startRelayProxy(node.url, (f) => {
      const frame = JSON.parse(f)
      if (frame.type !== "registered") return [f]
      delete frame.payload.capabilities
      return [JSON.stringify(frame)]
    })
    stops.push(() => proxy.stop())
    const toAlice: Array<Record<string, any>> = []
    const aliceProxy = startRelayProxy(node.url, (f) => {
      toAlice.push(JSON.parse(f))
      return [f]
    })
    stops.push(() => aliceProxy.stop())
    const alice = await clients.open(aliceProxy.url)
    const bob = await clients.open(proxy.url)
    const sent = await alice.m.send(bob.m.publicKey, "an old node for bob")
    await waitUntil(() => ofTag(alice, "Delivered").some((e) => e.device !== undefined), "bob's sealed receipt", 10_000)
    expect(ofTag(alice, "Delivered").filter((e) => e.device !== undefined).map((e) => [e.record.messageHash, e.device])).toEqual([[sent.messageHash, bob.m.deviceId]])
    // It came as a message of its own (and no message_delivered carried one), never shown.
    expect(toAlice.filter((f) => f["type"] === "message").map((f) => f["payload"]["from"])).toEqual([bob.m.publicKey])
    expect(toAlice.filter((f) => f["type"] === "message_delivered" && "receipt" in f["payload"])).toEqual([])
    expect((await alice.m.conversation(bob.m.publicKey)).map((r) => r.direction)).toEqual(["out"])
    expect(texts(alice)).toEqual([])
  }, T)

  test("a receipt that does not open is ignored: the node's Delivered still counts and the session goes on", async () => {
    const alice = await clients.open(node.url)
    // A recipient's session that asks for receipts and sends garbage as one.
    const bob = await pool.connect(node.url, NET, { capabilities: ["ack", "receipts"] })
    const sent = await alice.m.send(bob.key, "hello bob")
    await bob.waitInbox(1)
    expect(await bob.client.ack([sent.messageHash], { [sent.messageHash]: "AAAAAAAA" })).toEqual({ messageHashes: [sent.messageHash] })
    await waitUntil(() => ofTag(alice, "Delivered").length === 1, "the node's Delivered", 10_000)
    await sleep(300)
    expect(ofTag(alice, "Delivered").map((e) => [e.record.messageHash, e.device])).toEqual([[sent.messageHash, undefined]])
    const second = await alice.m.send(bob.key, "still here")
    await bob.waitInbox(2)
    expect(second.status).toBe("sent")
  }, T)
})
