/**
 * The epoch quota of a key is exact across nodes: one key with a session on each of three nodes,
 * sending on all three at once, gets exactly its quota accepted, the rest refused.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { clientPool, isAck } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()
const QUOTA = 20

describe.skipIf(skip !== undefined)("epoch quota across three nodes", () => {
  let cluster: Cluster.Cluster | undefined
  const { open, closeAll } = clientPool()
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test(`${QUOTA} per epoch: one key sending through three nodes at once gets exactly ${QUOTA} accepted`, async () => {
    cluster = await Cluster.start(3, { EPOCH_QUOTA: String(QUOTA), EPOCH_SECONDS: "3600" })
    const sender = makeIdentity()
    const to = makeIdentity().publicKey
    const sessions = await Promise.all(cluster.nodes.map((n) => open(n.url, { identity: sender })))
    const outcomes = (await Promise.all(sessions.map(async (s) => {
      const mine = []
      for (let i = 0; i < 12; i++) mine.push(await s.send(to))
      return mine
    }))).flat()
    const accepted = outcomes.filter(isAck)
    const refused = outcomes.filter((o) => !isAck(o))
    expect(accepted.length).toBe(QUOTA)
    expect(refused.length).toBe(36 - QUOTA)
    for (const o of refused) {
      expect(o.reply?.payload).toEqual({ code: "RATE_LIMITED", message: `Quota exceeded (${QUOTA} messages per 3600 s)` })
    }
    const [stored] = await cluster.query<{ n: string }>("SELECT count(*)::text AS n FROM l2ps_messages WHERE from_key = $1", [sender.publicKey])
    expect(Number(stored!.n)).toBe(QUOTA)
  }, 40_000)
})
