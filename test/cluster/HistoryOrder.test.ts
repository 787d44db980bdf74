/**
 * Two nodes write one conversation at once (each side's sends in bursts, many in the same
 * millisecond): the timestamps are allocated from the conversation's clock row in the group commit,
 * so they strictly increase in the order the commits took, and paging the conversation's history by
 * `before` from either side (small pages from one, larger from the other) gives every acknowledged
 * message once.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { freshTimestamp } from "../e2e/helpers.ts"
import { clientPool, isAck, type LoadClient, type SendOutcome } from "../fault/LoadClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

/** Sends fired at once from each side, per round. */
const BURST = 120
const ROUNDS = 3

describe.skipIf(skip !== undefined)("history order across two nodes", () => {
  let cluster: Cluster.Cluster | undefined
  const { open, closeAll } = clientPool()
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  /** Every page of the conversation with `peer`, newest first, `limit` at a time. */
  const pages = async (client: LoadClient, peer: string, limit: number) => {
    const result: Array<Array<{ messageHash: string; timestamp: number; from: string }>> = []
    let before: number | undefined
    for (let i = 0; i < 10_000; i++) {
      const timestamp = freshTimestamp()
      const payload: Record<string, unknown> = { peerKey: peer, proof: client.id.signFn(`history:${peer}:${timestamp}`), limit }
      if (before !== undefined) payload["before"] = before
      const r = await client.request("history", payload, { timestamp, timeoutMs: 15_000 })
      if (r.type !== "history_response") throw new Error(`history: ${JSON.stringify(r)}`)
      const page = r.payload.messages as Array<{ messageHash: string; timestamp: number; from: string }>
      result.push(page)
      if (!r.payload.hasMore) return result
      before = page.at(-1)!.timestamp
    }
    throw new Error("history never ended")
  }

  test("two senders on two nodes, one conversation: every page by `before` strictly older, nothing skipped or repeated", async () => {
    cluster = await Cluster.start(2, { READ_BURST_PER_KEY: "1000000", READ_RATE_PER_KEY: "1000000", REPLAY_CACHE_PER_KEY: "100000" })
    const c = cluster
    const alice = await open(c.nodes[0]!.url)
    const bob = await open(c.nodes[1]!.url)
    const outcomes: Array<SendOutcome> = []
    for (let round = 0; round < ROUNDS; round++) {
      // Each socket writes its burst in one go: each node reads many sends in the same millisecond.
      const burst = await Promise.all([
        ...Array.from({ length: BURST }, () => alice.send(bob.key)),
        ...Array.from({ length: BURST }, () => bob.send(alice.key))
      ])
      outcomes.push(...burst)
    }
    const acked = outcomes.filter(isAck)
    expect(outcomes.filter((o) => !isAck(o)).map((o) => o.failure ?? o.reply)).toEqual([])
    expect(acked.length).toBe(2 * BURST * ROUNDS)

    const want = new Set(acked.map((o) => o.messageHash))
    // Small pages from one side (many boundaries), larger ones from the other.
    for (const [reader, peer, limit] of [[alice, bob.key, 7], [bob, alice.key, 50]] as const) {
      const all = (await pages(reader, peer, limit)).flat()
      const hashes = all.map((m) => m.messageHash)
      const label = `${reader === alice ? "alice" : "bob"}, pages of ${limit}`
      expect({ label, repeated: hashes.length - new Set(hashes).size }).toEqual({ label, repeated: 0 })
      expect({ label, skipped: [...want].filter((h) => !hashes.includes(h)).length }).toEqual({ label, skipped: 0 })
      expect({ label, extra: hashes.length - want.size }).toEqual({ label, extra: 0 })
      const notOlder = all.filter((m, i) => i > 0 && m.timestamp >= all[i - 1]!.timestamp).length
      expect({ label, notStrictlyOlder: notOlder }).toEqual({ label, notStrictlyOlder: 0 })
    }

    // The reply carries the message's stored timestamp, as history has it.
    const stored = new Map(
      (await c.query<{ message_hash: string; ts: string }>("SELECT message_hash, ts::text AS ts FROM l2ps_messages"))
        .map((r) => [r.message_hash, Number(r.ts)] as const)
    )
    expect(acked.filter((o) => o.reply!.timestamp !== stored.get(o.messageHash)).length).toBe(0)
  }, 58_000)
})
