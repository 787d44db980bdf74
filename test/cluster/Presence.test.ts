/**
 * Presence and the session cap across three nodes on one database and one nats-server: `peer_joined`
 * and `peer_left` on a key's first and last session in the whole cluster, seen by sessions of every
 * node; `discover` and the register answer list every node's keys; the cap evicts the oldest session
 * wherever it is (a node cut off from the bus learns it from the table); a node killed with SIGKILL has
 * its keys reported left by the others within seconds.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ask, expectAlive, makeIdentity, newRequestId, registerFrame, requestFrame, waitUntil } from "../e2e/helpers.ts"
import { open as openRaw, type RawSocket } from "../support/RawSocket.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()
const NET = "default"

describe.skipIf(skip !== undefined)("presence across the cluster", () => {
  let cluster: Cluster.Cluster
  const sockets: Array<RawSocket> = []
  const sock = async (i: number) => {
    const s = await openRaw(cluster.nodes[i]!.url)
    sockets.push(s)
    return s
  }
  const registered = async (i: number, id = makeIdentity()) => {
    const s = await sock(i)
    const reply = await ask(s, registerFrame(id, NET))
    expect(reply.type).toBe("registered")
    return { s, id, reply }
  }
  /** Sessions of `key` in the shared table, per node (evicted ones left out). */
  const rows = async (key: string) =>
    (await cluster.query<{ node_id: string }>("SELECT node_id FROM cluster_sessions WHERE key = $1 AND NOT evicted ORDER BY node_id", [key]))
      .map((r) => r.node_id)
  const until = async (check: () => Promise<boolean>, what: string, ms = 5000) => {
    const deadline = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await Bun.sleep(50)
    }
  }
  const discover = async (s: RawSocket) => {
    const f = await ask(s, requestFrame("discover", {}, newRequestId()))
    expect(f.type).toBe("discover_response")
    return f.payload.peers as Array<string>
  }
  /** The presence frames `s` received about `key`, in order. */
  const presenceOf = (s: RawSocket, key: string) =>
    s.received.map((r) => JSON.parse(r.raw) as { type: string; payload?: { publicKey?: string } })
      .filter((f) => (f.type === "peer_joined" || f.type === "peer_left") && f.payload?.publicKey === key)
      .map((f) => f.type)

  beforeAll(async () => {
    // n2 reaches the bus through a proxy the test can freeze.
    cluster = await Cluster.start(3, { MAX_SESSIONS_PER_KEY: "2" }, [1])
  }, 55_000)
  afterAll(async () => {
    for (const s of sockets) if (!s.isClosed) await s.close().catch(() => undefined)
    await cluster?.dispose()
  })

  test("peer_joined on a key's first session in the cluster and peer_left on its last, at sessions of every node", async () => {
    const watchers = await Promise.all([0, 2].map((i) => registered(i)))
    const k = makeIdentity()
    const first = await registered(1, k)
    for (const w of watchers) await waitUntil(() => presenceOf(w.s, k.publicKey).length === 1, "peer_joined at a watcher", 5000)
    // A second session on another node, then the first gone: the key stays online, nothing is said.
    const second = await registered(2, k)
    await until(async () => (await rows(k.publicKey)).length === 2, "the second session's row")
    await first.s.close()
    await until(async () => (await rows(k.publicKey)).join() === "n3", "the first session's row gone")
    // The last one goes: one peer_left, at both watchers.
    await second.s.close()
    for (const w of watchers) await waitUntil(() => presenceOf(w.s, k.publicKey).length === 2, "peer_left at a watcher", 5000)
    await Bun.sleep(300)
    for (const w of watchers) expect(presenceOf(w.s, k.publicKey)).toEqual(["peer_joined", "peer_left"])
  }, 20_000)

  test("discover and the register answer list the keys online on every node", async () => {
    const ids = await Promise.all([0, 1, 2].map((i) => registered(i)))
    const keys = ids.map((r) => r.id.publicKey)
    const viewer = await registered(0)
    await until(async () => keys.every((k) => viewer.reply.payload.onlinePeers.includes(k)) ||
      (await discover(viewer.s)).filter((k) => keys.includes(k)).length === 3, "discover to list the three keys")
    for (const i of [1, 2]) {
      const s = await sock(i)
      const late = await ask(s, registerFrame(makeIdentity(), NET))
      expect(late.payload.onlinePeers).toEqual(expect.arrayContaining(keys))
      expect(await discover(s)).toEqual(expect.arrayContaining(keys))
    }
    // Public keys of other nodes' sessions are found too.
    const f = await ask(viewer.s, requestFrame("request_public_key", { targetId: keys[2] }, newRequestId()))
    expect(f.payload.publicKey).toBe(keys[2])
  }, 20_000)

  test("the session cap counts every node's sessions and evicts the oldest, on whichever node holds it", async () => {
    const k = makeIdentity()
    const oldest = await registered(0, k)
    await until(async () => (await rows(k.publicKey)).length === 1, "the first row")
    const middle = await registered(1, k)
    await until(async () => (await rows(k.publicKey)).length === 2, "the second row")
    const newest = await registered(2, k)
    const closed = await Promise.race([oldest.s.closed, Bun.sleep(5000).then(() => undefined)])
    expect(closed?.code).toBe(4001)
    await expectAlive(middle.s, true)
    await expectAlive(newest.s, true)
    await until(async () => (await rows(k.publicKey)).join() === "n2,n3", "the evicted session's row gone")
    // The oldest is now on n2; a new session on n2 evicts it there.
    const again = await registered(1, k)
    const second = await Promise.race([middle.s.closed, Bun.sleep(5000).then(() => undefined)])
    expect(second?.code).toBe(4001)
    await expectAlive(newest.s, true)
    await expectAlive(again.s, true)
    await until(async () => (await rows(k.publicKey)).join() === "n2,n3", "n2's older row gone")
  }, 20_000)

  test("a node cut off from the bus learns joins and its evictions from the table within seconds", async () => {
    const watcher = await registered(1)
    const proxy = cluster.proxies.get(1)!
    proxy.freeze()
    try {
      const k = makeIdentity()
      await registered(0, k)
      // The cap: n2 holds the oldest session, and the eviction message to it is lost.
      const e = makeIdentity()
      const oldest = await registered(1, e)
      await until(async () => (await rows(e.publicKey)).length === 1, "the first row")
      await registered(0, e)
      await until(async () => (await rows(e.publicKey)).length === 2, "the second row")
      await registered(2, e)
      const closed = await Promise.race([oldest.s.closed, Bun.sleep(8000).then(() => undefined)])
      expect(closed?.code).toBe(4001)
      await waitUntil(() => presenceOf(watcher.s, k.publicKey).length === 1, "peer_joined read from the table", 8000)
      expect(await discover(watcher.s)).toContain(k.publicKey)
    } finally {
      proxy.thaw()
    }
  }, 25_000)

  test("a node killed with SIGKILL: its keys are reported left by the others within seconds and no longer listed", async () => {
    const watcher = await registered(0)
    const onlyThere = await registered(2)
    const alsoElsewhere = makeIdentity()
    await registered(2, alsoElsewhere)
    await registered(1, alsoElsewhere)
    const key = onlyThere.id.publicKey
    await waitUntil(() => presenceOf(watcher.s, key).length === 1, "peer_joined", 5000)
    await until(async () => (await rows(alsoElsewhere.publicKey)).length === 2, "both rows of the shared key")
    const killedAt = Date.now()
    await cluster.nodes[2]!.kill()
    await waitUntil(() => presenceOf(watcher.s, key).length === 2, "peer_left after the kill", 8000)
    expect(Date.now() - killedAt).toBeLessThan(8000)
    expect(presenceOf(watcher.s, key)).toEqual(["peer_joined", "peer_left"])
    // The key with a session on n2 stays online: no peer_left for it.
    expect(presenceOf(watcher.s, alsoElsewhere.publicKey)).toEqual(["peer_joined"])
    expect(await discover(watcher.s)).not.toContain(key)
    expect(await discover(watcher.s)).toContain(alsoElsewhere.publicKey)
    expect(await cluster.query("SELECT 1 FROM cluster_sessions WHERE node_id = 'n3'")).toEqual([])
    // n3's sessions no longer count toward the cap.
    expect(await rows(alsoElsewhere.publicKey)).toEqual(["n2"])
  }, 20_000)
})
