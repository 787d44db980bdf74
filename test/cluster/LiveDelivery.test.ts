/**
 * Live delivery across three nodes on a real nats-server: a message sent on n1 reaches its recipient's
 * sessions on n2 and n3 at once (not from storage: the resync period is set far beyond the test), the
 * recipient's acknowledgement comes back to the sender on n1 as `message_delivered`, and a copy reaches
 * the sender's other session on another node.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

describe.skipIf(skip !== undefined)("live delivery across nodes", () => {
  let cluster: Cluster.Cluster
  const { open, closeAll } = clientPool()
  beforeAll(async () => {
    // Storage is read again only after 10 minutes: whatever arrives live came over the bus.
    cluster = await Cluster.start(3, { CLUSTER_RESYNC_MS: "600000" })
  }, 55_000)
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("n1 → sessions of one key on n2 and n3, live; acks come back to n1 as message_delivered", async () => {
    const bob = makeIdentity()
    const onN2 = await open(cluster.nodes[1]!.url, { identity: bob, capabilities: ["ack"], autoAck: true })
    const onN3 = await open(cluster.nodes[2]!.url, { identity: bob, capabilities: ["ack"], autoAck: true })
    // Another key's session on the recipient's node: a push goes to its own key only.
    const eve = await open(cluster.nodes[1]!.url, { capabilities: ["ack", "copies"] })
    const alice = await open(cluster.nodes[0]!.url)
    const outcomes = []
    for (let i = 0; i < 20; i++) outcomes.push(await alice.send(bob.publicKey))
    expect(outcomes.every(isAck)).toBe(true)
    const hashes = outcomes.map((o) => o.messageHash)
    for (const [name, c] of [["n2", onN2], ["n3", onN3]] as const) {
      await waitUntil(() => hashes.every((h) => c.received.some((r) => r.messageHash === h)), `20 messages live on ${name}`, 5_000)
      expect(c.received.filter((r) => hashes.includes(r.messageHash)).every((r) => !r.offline)).toBe(true)
    }
    const delivered = () =>
      new Set(alice.frames.filter((f) => f.type === "message_delivered").map((f) => f.payload.messageHash as string))
    await waitUntil(() => hashes.every((h) => delivered().has(h)), "message_delivered for all 20 on n1", 5_000)
    await eve.barrier()
    expect(eve.frames.filter((f) => f.type === "message" || f.type === "message_delivered")).toEqual([])
    const rows = await cluster.query<{ delivery_status: string; n: string }>(
      "SELECT delivery_status, count(*)::text AS n FROM l2ps_messages WHERE to_key = $1 GROUP BY delivery_status",
      [bob.publicKey.toLowerCase()]
    )
    expect(rows).toEqual([{ delivery_status: "delivered", n: "20" }])
  }, 20_000)

  test("sealed receipts cross back: each device's receipt on n2 and n3 reaches the sender on n1 that asked, not one that did not", async () => {
    const bob = makeIdentity()
    const alice = makeIdentity()
    const b2 = await open(cluster.nodes[1]!.url, { identity: bob, capabilities: ["ack", "receipts"] })
    const b3 = await open(cluster.nodes[2]!.url, { identity: bob, capabilities: ["ack", "receipts"] })
    const asked = await open(cluster.nodes[0]!.url, { identity: alice, capabilities: ["receipts"] })
    const plain = await open(cluster.nodes[2]!.url, { identity: alice })
    const o = await asked.send(bob.publicKey)
    expect(isAck(o)).toBe(true)
    const h = o.messageHash
    for (const c of [b2, b3]) await waitUntil(() => c.received.some((r) => r.messageHash === h), "the message on both of bob's nodes", 5_000)
    expect((await b2.request("ack", { messageHashes: [h], receipts: { [h]: "T24gbjI=" } })).payload).toEqual({ messageHashes: [h] })
    // Confirmed already: only the receipt travels (kind "s" on the bus).
    expect((await b3.request("ack", { messageHashes: [h], receipts: { [h]: "T24gbjM=" } })).payload).toEqual({ messageHashes: [] })
    const delivered = (c: typeof asked) => c.frames.filter((f) => f.type === "message_delivered").map((f) => f.payload)
    await waitUntil(() => delivered(asked).length === 2, "both receipts on n1", 5_000)
    expect(delivered(asked).map((p) => [p.messageHash, p.receipt])).toEqual([[h, "T24gbjI="], [h, "T24gbjM="]])
    await waitUntil(() => delivered(plain).length === 1, "the plain confirmation on n3", 5_000)
    await plain.barrier()
    expect(delivered(plain)).toEqual([{ messageHash: h, at: expect.any(Number) }])
  }, 20_000)

  test("a non-acknowledging recipient on n2 is marked handed over by n2; the sender's copy reaches its session on n3", async () => {
    const carol = makeIdentity()
    const dave = makeIdentity()
    const carolOnN2 = await open(cluster.nodes[1]!.url, { identity: carol })
    const dave1 = await open(cluster.nodes[0]!.url, { identity: dave })
    const dave3 = await open(cluster.nodes[2]!.url, { identity: dave, capabilities: ["copies"] })
    const o = await dave1.send(carol.publicKey)
    expect(isAck(o)).toBe(true)
    await waitUntil(() => carolOnN2.received.some((r) => r.messageHash === o.messageHash && !r.offline), "the message live on n2", 5_000)
    await waitUntil(
      () => dave3.frames.some((f) => f.type === "message" && f.payload.messageHash === o.messageHash && f.payload.to === carol.publicKey.toLowerCase()),
      "the copy on dave's n3 session",
      5_000
    )
    // Handed over by n2 once written: a later registration of carol does not get it again.
    const deadline = Date.now() + 5_000
    let status = ""
    while (Date.now() < deadline) {
      const [row] = await cluster.query<{ delivery_status: string }>("SELECT delivery_status FROM l2ps_messages WHERE message_hash = $1", [o.messageHash])
      status = row!.delivery_status
      if (status !== "queued") break
      await Bun.sleep(50)
    }
    expect(status).toBe("sent")
    const again = await open(cluster.nodes[2]!.url, { identity: carol })
    await again.barrier()
    expect(again.received.some((r) => r.messageHash === o.messageHash)).toBe(false)
  }, 20_000)
})
