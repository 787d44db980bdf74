/**
 * A registration reads storage only once the bus has its key's subscription: a message committed on
 * another node while the recipient registers is either in that read or pushed live, never left for
 * the resync (set here far beyond the test). The recipient's node reaches NATS through a proxy that
 * holds what the node sends for 40 ms, so its SUB lands well after the node wrote it: without the
 * round trip that confirms it, the messages committed in that window arrive nowhere.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { waitUntil } from "../e2e/helpers.ts"
import { clientPool, isAck, sendLoop } from "../fault/LoadClient.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()
const ROUNDS = 6

describe.skipIf(skip !== undefined)("subscribe before the storage read", () => {
  let cluster: Cluster.Cluster
  const { open, closeAll } = clientPool()
  beforeAll(async () => {
    cluster = await Cluster.start(2, { CLUSTER_RESYNC_MS: "600000" }, [1])
    cluster.proxies.get(1)!.delay(40)
  }, 55_000)
  afterAll(async () => {
    closeAll()
    await cluster?.dispose()
  })

  test("messages committed on n1 while their recipient registers on n2 all arrive, round after round", async () => {
    const alice = await open(cluster.nodes[0]!.url)
    for (let round = 0; round < ROUNDS; round++) {
      const bob = makeIdentity()
      // Sends run before, during and after the registration: some are stored, some race the SUB, some are pushed.
      const loop = sendLoop(alice, [bob.publicKey], 4)
      await Bun.sleep(20)
      const onN2 = await open(cluster.nodes[1]!.url, { identity: bob })
      await Bun.sleep(150)
      await loop.stop()
      const acked = loop.outcomes.filter(isAck).map((o) => o.messageHash)
      expect(acked.length).toBeGreaterThan(0)
      await waitUntil(
        () => acked.every((h) => onN2.received.some((r) => r.messageHash === h)),
        `round ${round}: all ${acked.length} acknowledged messages on n2`,
        5_000
      )
    }
  }, 60_000)
})
