/**
 * The bus may lose pushes, never messages: with one node cut off from NATS (a frozen proxy), its
 * sessions still get what other nodes accept for them, read from storage every `CLUSTER_RESYNC_MS`;
 * with NATS killed and restarted under cross-node load, every acknowledged message is delivered (late)
 * and is in history exactly once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck, type LoadClient, sendLoop, type SendOutcome } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

const receivedAll = (c: LoadClient, hashes: ReadonlyArray<string>) => {
  const got = new Set(c.received.map((r) => r.messageHash))
  return hashes.every((h) => got.has(h))
}

describe.skipIf(skip !== undefined)("the bus lost, the messages not", () => {
  let cluster: Cluster.Cluster
  const { open, closeAll } = clientPool()
  beforeAll(async () => {
    cluster = await Cluster.start(3, { CLUSTER_RESYNC_MS: "1000" }, [2])
  }, 55_000)
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("n3 cut off from NATS: what n1 accepts for n3's session is delivered from storage while the cut lasts", async () => {
    const bob = makeIdentity()
    const onN3 = await open(cluster.nodes[2]!.url, { identity: bob, capabilities: ["ack"], autoAck: true })
    const alice = await open(cluster.nodes[0]!.url)
    const proxy = cluster.proxies.get(2)!
    proxy.freeze()
    try {
      // Once n3 knows its bus is gone: nothing it gets now can have come over the bus.
      const deadline = Date.now() + 8_000
      while ((await Cluster.health(cluster.nodes[2]!))["cluster"]["bus"] === "connected" && Date.now() < deadline) await Bun.sleep(100)
      expect((await Cluster.health(cluster.nodes[2]!))["cluster"]["bus"]).not.toBe("connected")
      const outcomes: Array<SendOutcome> = []
      for (let i = 0; i < 20; i++) outcomes.push(await alice.send(bob.publicKey))
      expect(outcomes.every(isAck)).toBe(true)
      const hashes = outcomes.map((o) => o.messageHash)
      await waitUntil(() => receivedAll(onN3, hashes), "20 messages on n3 with its bus cut off", 8_000)
    } finally {
      proxy.thaw()
    }
  }, 20_000)

  test("NATS killed and restarted under load: every acknowledged message delivered, in history exactly once", async () => {
    const r1 = makeIdentity()
    const r2 = makeIdentity()
    const onN2 = await open(cluster.nodes[1]!.url, { identity: r1, capabilities: ["ack"], autoAck: true })
    const onN3 = await open(cluster.nodes[2]!.url, { identity: r2 })
    const fromN1 = await open(cluster.nodes[0]!.url)
    const fromN3 = await open(cluster.nodes[2]!.url)
    const loops = [sendLoop(fromN1, [r1.publicKey, r2.publicKey], 2), sendLoop(fromN3, [r1.publicKey], 2)]
    const acked = () => loops.flatMap((l) => l.outcomes.filter(isAck))
    const more = async (n: number, what: string) => {
      const before = acked().length
      await waitUntil(() => acked().length >= before + n, what, 10_000)
    }
    await more(50, "50 acknowledgements with NATS up")
    await cluster.nats.stop()
    await more(50, "50 acknowledgements with NATS down")
    await cluster.nats.start()
    await more(50, "50 acknowledgements with NATS back")
    await Promise.all(loops.map((l) => l.stop()))
    const all = acked()
    const to = (key: string) => all.filter((o) => o.to === key).map((o) => o.messageHash)
    await waitUntil(() => receivedAll(onN2, to(r1.publicKey)), "every acknowledged message on n2", 10_000)
    await waitUntil(() => receivedAll(onN3, to(r2.publicKey)), "every acknowledged message on n3", 10_000)

    const stored = await cluster.query<{ message_hash: string; n: string }>(
      "SELECT message_hash, count(*)::text AS n FROM l2ps_messages WHERE message_hash = ANY($1) GROUP BY message_hash",
      [all.map((o) => o.messageHash)]
    )
    expect(stored.length).toBe(all.length)
    expect(stored.filter((r) => r.n !== "1")).toEqual([])
    // What r1 reads of its conversation with n1's sender: each acknowledged message once.
    const history = (await onN2.conversation(fromN1.key)).map((m) => m["messageHash"] as string)
    const sent = all.filter((o) => o.to === r1.publicKey && loops[0]!.outcomes.includes(o)).map((o) => o.messageHash)
    expect(sent.length).toBeGreaterThan(0)
    expect(sent.filter((h) => history.filter((x) => x === h).length !== 1)).toEqual([])
    expect(history.length).toBe(new Set(history).size)
    console.log(`bus restart: ${all.length} acknowledged, ${onN2.received.length + onN3.received.length} received, at-least-once duplicates included`)
  }, 30_000)
})
