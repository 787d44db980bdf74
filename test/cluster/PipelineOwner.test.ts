/**
 * Three nodes on one database and one bus: each network's pipeline and the local chain's block
 * producer run on exactly one of them; when that node is killed (-9) under load, another takes over
 * within 5 s, and every acknowledged message ends in exactly one batch, the batches contiguous,
 * delivered, and in its conversation's history exactly once.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck, sendLoop } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

describe.skipIf(skip !== undefined)("pipeline ownership across three nodes", () => {
  let cluster: Cluster.Cluster | undefined
  const { open, closeAll } = clientPool()
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("one owner per job; the owner killed under load: takeover within 5 s, every acknowledged message in exactly one batch", async () => {
    cluster = await Cluster.start(3)
    const c = cluster
    const owners = async () => ({
      pipeline: await Cluster.ownerOf(c, "pipeline/default"),
      legacy: await Cluster.ownerOf(c, "pipeline/legacy"),
      blocks: await Cluster.ownerOf(c, "l1/blocks")
    })
    let first = await owners()
    for (let i = 0; i < 100 && (first.pipeline === undefined || first.blocks === undefined); i++) {
      await Bun.sleep(50)
      first = await owners()
    }
    expect(first.pipeline?.epoch).toBe(1)
    expect(first.blocks?.epoch).toBe(1)
    // Each took its lock once: nobody else claimed a term meanwhile.
    await Bun.sleep(1500)
    expect(await owners()).toEqual(first)

    const ownerId = first.pipeline!.nodeId
    const owner = c.nodes[Number(ownerId.slice(1)) - 1]!
    const others = c.nodes.filter((n) => n !== owner)
    const recipientIds = [makeIdentity(), makeIdentity()]
    const recipients = recipientIds.map((i) => i.publicKey)
    const senders = await Promise.all(c.nodes.map((n) => open(n.url)))
    const loops = senders.map((s) => sendLoop(s, recipients, 3))
    const acked = () => loops.flatMap((l) => l.outcomes.filter(isAck).map((o) => o.messageHash))
    await waitUntil(() => acked().length >= 150, "150 acknowledgements", 20_000)
    const batchesBefore = (await c.query("SELECT 1 FROM l2ps_batches WHERE l2ps_uid = 'default'")).length
    expect(batchesBefore).toBeGreaterThan(0)

    const killedAt = Date.now()
    await owner.kill()
    let next = await Cluster.ownerOf(c, "pipeline/default")
    while ((next?.nodeId ?? ownerId) === ownerId && Date.now() - killedAt < 5000) {
      await Bun.sleep(25)
      next = await Cluster.ownerOf(c, "pipeline/default")
    }
    const takeover = Date.now() - killedAt
    expect(next?.nodeId).not.toBe(ownerId)
    expect(next!.epoch).toBe(2)
    expect(takeover).toBeLessThan(5000)

    const afterKill = acked().length
    await waitUntil(() => acked().length >= afterKill + 150, "150 more acknowledgements on the surviving nodes", 20_000)
    await Promise.all(loops.map((l) => l.stop()))
    const all = acked()
    let pendingDone = false
    const deadline = Date.now() + 15_000
    while (!pendingDone && Date.now() < deadline) {
      const [row] = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM l2ps_mempool")
      pendingDone = row!.n === "0"
      if (!pendingDone) await Bun.sleep(100)
    }
    expect(pendingDone).toBe(true)
    const result = await Cluster.checkBatches(c, all)
    expect({ missing: result.missing, notInOneBatch: result.notInOneBatch, gaps: result.gaps })
      .toEqual({ missing: [], notInOneBatch: [], gaps: [] })
    // The block producer moved too if it was on the killed node, and the chain goes on.
    const blocks = await Cluster.ownerOf(c, "l1/blocks")
    expect(blocks?.nodeId).not.toBe(ownerId === first.blocks!.nodeId ? ownerId : "")
    const [confirmed] = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM l2ps_batches WHERE status <> 'batched'")
    expect(Number(confirmed!.n)).toBeGreaterThan(0)

    // Delivered at least once: the recipients come to a surviving node and get every message from storage.
    const outcomes = loops.flatMap((l) => l.outcomes.filter(isAck))
    for (const identity of recipientIds) {
      const client = await open(others[0]!.url, { identity })
      const want = outcomes.filter((o) => o.to === identity.publicKey).map((o) => o.messageHash)
      await waitUntil(() => {
        const got = new Set(client.received.map((m) => m.messageHash))
        return want.every((h) => got.has(h))
      }, `every acknowledged message delivered to ${identity.publicKey.slice(0, 8)}`, 15_000)
      // In history exactly once, each conversation in strictly increasing timestamps across the three writers' lives.
      for (const [i, sender] of senders.entries()) {
        const fromSender = loops[i]!.outcomes.filter((o) => isAck(o) && o.to === identity.publicKey).map((o) => o.messageHash)
        const h = await Cluster.checkHistory(client, sender.key, fromSender)
        expect({ missing: h.missing, repeated: h.repeated, notStrictlyOlder: h.notStrictlyOlder })
          .toEqual({ missing: [], repeated: [], notStrictlyOlder: 0 })
      }
    }
    console.log(`takeover after kill -9: ${takeover} ms; ${all.length} acknowledged, ${result.batches} batches; survivors ${others.length}`)
  }, 55_000)
})
