/**
 * `kill -9` of one of three nodes under cross-node load: its clients reconnect to another node, and
 * every acknowledged message is stored, delivered at least once, in history exactly once and in
 * exactly one batch, batch numbers contiguous.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck, sendLoop } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

describe.skipIf(skip !== undefined)("a node killed under cross-node load", () => {
  let cluster: Cluster.Cluster | undefined
  const { open, closeAll } = clientPool()
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("n3 killed: its recipient comes back on n1 and gets everything acknowledged, once in history", async () => {
    cluster = await Cluster.start(3, { CLUSTER_RESYNC_MS: "1000" })
    const c = cluster
    const r1 = makeIdentity()
    const r2 = makeIdentity()
    const opts = { capabilities: ["ack"], autoAck: true } as const
    const r1OnN2 = await open(c.nodes[1]!.url, { identity: r1, ...opts })
    const r2OnN3 = await open(c.nodes[2]!.url, { identity: r2, ...opts })
    const s1 = await open(c.nodes[0]!.url)
    const s3 = await open(c.nodes[2]!.url)
    const loops = [sendLoop(s1, [r1.publicKey, r2.publicKey], 2), sendLoop(s3, [r1.publicKey, r2.publicKey], 2)]
    const acked = () => loops.flatMap((l) => l.outcomes.filter(isAck))
    const more = async (n: number, what: string) => {
      const before = acked().length
      await waitUntil(() => acked().length >= before + n, what, 10_000)
    }
    await more(60, "60 acknowledgements before the kill")
    await c.nodes[2]!.kill()
    const r2OnN1 = await open(c.nodes[0]!.url, { identity: r2, ...opts })
    await more(60, "60 acknowledgements after the kill")
    await Promise.all(loops.map((l) => l.stop()))
    const all = acked()
    const to = (key: string) => all.filter((o) => o.to === key).map((o) => o.messageHash)

    const got = (...clients: Array<typeof r1OnN2>) => new Set(clients.flatMap((x) => x.received.map((r) => r.messageHash)))
    await waitUntil(() => to(r1.publicKey).every((h) => got(r1OnN2).has(h)), "r1 got every acknowledged message", 10_000)
    await waitUntil(() => to(r2.publicKey).every((h) => got(r2OnN3, r2OnN1).has(h)), "r2 got every acknowledged message", 10_000)

    for (const [client, sender, key] of [[r1OnN2, s1, r1.publicKey], [r2OnN1, s1, r2.publicKey]] as const) {
      const history = (await client.conversation(sender.key)).map((m) => m["messageHash"] as string)
      const sent = loops[0]!.outcomes.filter((o) => isAck(o) && o.to === key).map((o) => o.messageHash)
      expect(sent.length).toBeGreaterThan(0)
      expect(sent.filter((h) => history.filter((x) => x === h).length !== 1)).toEqual([])
      expect(history.length).toBe(new Set(history).size)
    }

    let drained = false
    const deadline = Date.now() + 15_000
    while (!drained && Date.now() < deadline) {
      const [row] = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM l2ps_mempool")
      drained = row!.n === "0"
      if (!drained) await Bun.sleep(100)
    }
    expect(drained).toBe(true)
    const result = await Cluster.checkBatches(c, all.map((o) => o.messageHash))
    expect({ missing: result.missing, notInOneBatch: result.notInOneBatch, gaps: result.gaps })
      .toEqual({ missing: [], notInOneBatch: [], gaps: [] })
    console.log(`kill -9: ${all.length} acknowledged, ${result.batches} batches`)
  }, 45_000)
})
