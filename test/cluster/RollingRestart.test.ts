/**
 * A rolling restart of all three nodes under load (SIGTERM, as an operator upgrading them one by one):
 * ownership moves with them, and at the end every acknowledged message is stored, in exactly one
 * batch, batches contiguous and chained, delivered to its recipient, and in its conversation's history
 * exactly once.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck, type LoadClient, sendLoop, type SendOutcome } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

describe.skipIf(skip !== undefined)("rolling restart of three nodes", () => {
  let cluster: Cluster.Cluster | undefined
  const { open, closeAll } = clientPool()
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("each node restarted in turn under load: nothing acknowledged is lost, batched twice or left undelivered", async () => {
    cluster = await Cluster.start(3)
    const c = cluster
    const recipientIds = [makeIdentity(), makeIdentity()]
    const recipients = recipientIds.map((i) => i.publicKey)
    const loops: Array<ReturnType<typeof sendLoop>> = []
    const senders: Array<LoadClient> = []
    const startLoop = async (i: number) => {
      const sender = await open(c.nodes[i]!.url)
      senders.push(sender)
      loops.push(sendLoop(sender, recipients, 2))
    }
    const acked = (): Array<SendOutcome> => loops.flatMap((l) => l.outcomes.filter(isAck))
    for (let i = 0; i < 3; i++) await startLoop(i)
    for (let i = 0; i < 3; i++) {
      const before = acked().length
      await waitUntil(() => acked().length >= before + 60, `60 acknowledgements before restarting n${i + 1}`, 20_000)
      c.nodes[i] = await c.nodes[i]!.restart()
      await startLoop(i)
    }
    const last = acked().length
    await waitUntil(() => acked().length >= last + 60, "60 acknowledgements after the last restart", 20_000)
    await Promise.all(loops.map((l) => l.stop()))
    const all = acked()

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
    // Every node went down once: the pipeline changed hands at least once, each time under a new epoch.
    expect((await Cluster.ownerOf(c, "pipeline/default"))!.epoch).toBeGreaterThanOrEqual(2)

    for (const identity of recipientIds) {
      const client = await open(c.nodes[0]!.url, { identity })
      const want = all.filter((o) => o.to === identity.publicKey).map((o) => o.messageHash)
      await waitUntil(() => {
        const got = new Set(client.received.map((m) => m.messageHash))
        return want.every((h) => got.has(h))
      }, `every acknowledged message delivered to ${identity.publicKey.slice(0, 8)}`, 15_000)
      // In history exactly once, each conversation in strictly increasing timestamps through the restarts.
      for (const [i, sender] of senders.entries()) {
        const fromSender = loops[i]!.outcomes.filter((o) => isAck(o) && o.to === identity.publicKey).map((o) => o.messageHash)
        const h = await Cluster.checkHistory(client, sender.key, fromSender)
        expect({ missing: h.missing, repeated: h.repeated, notStrictlyOlder: h.notStrictlyOlder })
          .toEqual({ missing: [], repeated: [], notStrictlyOlder: 0 })
      }
    }
    console.log(`rolling restart: ${all.length} acknowledged, ${result.batches} batches`)
  }, 58_000)
})
