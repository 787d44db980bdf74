/**
 * Three nodes sharing a database and a bus: a proof used on one is refused on the others, and each
 * node's `/health` says what it is (its id), how its bus is and what it owns; a node cut off from the
 * bus says so, and still acknowledges and stores what it is sent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ask, historyFrame, registerFrame } from "../e2e/helpers.ts"
import { encryptedFor, makeIdentity, randomHash } from "../support/L2psClient.ts"
import { open as openRaw, type RawSocket } from "../support/RawSocket.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()

describe.skipIf(skip !== undefined)("cluster members", () => {
  let cluster: Cluster.Cluster
  const sockets: Array<RawSocket> = []
  const sock = async (i: number) => {
    const s = await openRaw(cluster.nodes[i]!.url)
    sockets.push(s)
    return s
  }
  beforeAll(async () => {
    cluster = await Cluster.start(3, {}, [2])
  }, 55_000)
  afterAll(async () => {
    for (const s of sockets) if (!s.isClosed) await s.close().catch(() => undefined)
    await cluster?.dispose()
  })

  test("a registration or history proof used on one node is refused on every other", async () => {
    const id = makeIdentity()
    const register = registerFrame(id, "default")
    expect((await ask(await sock(0), register)).type).toBe("registered")
    for (const i of [1, 2]) {
      const reply = await ask(await sock(i), register)
      expect({ type: reply.type, payload: reply.payload }).toEqual({
        type: "error",
        payload: { code: "INVALID_PROOF", message: "Proof already used" }
      })
    }
    // History: each node registered with a fresh proof of its own; one history proof, used on n2 first.
    const sessions = await Promise.all([1, 2].map(async (i) => {
      const s = await sock(i)
      expect((await ask(s, registerFrame(id, "default"))).type).toBe("registered")
      return s
    }))
    const history = historyFrame(id, makeIdentity().publicKey)
    expect((await ask(sessions[0]!, history)).type).toBe("history_response")
    const replayed = await ask(sessions[1]!, history)
    expect(replayed.payload).toEqual({ code: "INVALID_PROOF", message: "Proof already used" })
  }, 20_000)

  test("/health: the node's id, its bus, its lock connection, and every job owned by exactly one node", async () => {
    const all = await Promise.all(cluster.nodes.map(Cluster.health))
    expect(all.map((h) => h["cluster"]?.["nodeId"])).toEqual(["n1", "n2", "n3"])
    for (const h of all) {
      expect(h["status"]).toBe("ok")
      expect(h["cluster"]).toMatchObject({ bus: "connected", locks: "ok" })
    }
    const owned = all.flatMap((h) => h["cluster"]["owned"] as Array<string>).map((o) => o.replace(/#\d+$/, "")).sort()
    expect(owned).toEqual(["l1/blocks", "pipeline/default", "pipeline/legacy", "sweep/offline-expiry"])
  })

  test("a node cut off from the bus (its link silent) says so within seconds and still takes messages; the others are fine", async () => {
    const proxy = cluster.proxies.get(2)!
    proxy.freeze()
    const deadline = Date.now() + 8000
    let cut = await Cluster.health(cluster.nodes[2]!)
    while (cut["cluster"]["bus"] === "connected" && Date.now() < deadline) {
      await Bun.sleep(100)
      cut = await Cluster.health(cluster.nodes[2]!)
    }
    expect(cut["status"]).toBe("degraded")
    expect(cut["cluster"]["bus"]).not.toBe("connected")
    for (const other of cluster.nodes.slice(0, 2)) {
      const h = await Cluster.health(other)
      expect([h["status"], h["cluster"]["bus"]]).toEqual(["ok", "connected"])
    }
    const sender = makeIdentity()
    const s = await sock(2)
    expect((await ask(s, registerFrame(sender, "default"))).type).toBe("registered")
    const hash = randomHash()
    const sent = await ask(s, {
      type: "send",
      payload: { to: makeIdentity().publicKey, encrypted: encryptedFor("cut off"), messageHash: hash },
      timestamp: Date.now(),
      requestId: "r0"
    })
    expect(["message_sent", "message_queued"]).toContain(String(sent.type))
    expect((await cluster.query("SELECT 1 FROM l2ps_messages WHERE message_hash = $1", [hash])).length).toBe(1)
    proxy.thaw()
    const back = Date.now() + 15_000
    while ((await Cluster.health(cluster.nodes[2]!))["cluster"]["bus"] !== "connected" && Date.now() < back) await Bun.sleep(100)
    expect((await Cluster.health(cluster.nodes[2]!))["cluster"]["bus"]).toBe("connected")
  }, 40_000)

  test("with the bus down every node says so, and messages are still acknowledged and stored; back, it reconnects", async () => {
    await cluster.nats.stop()
    const deadline = Date.now() + 8000
    let all = await Promise.all(cluster.nodes.map(Cluster.health))
    while (all.some((h) => h["cluster"]["bus"] === "connected") && Date.now() < deadline) {
      await Bun.sleep(100)
      all = await Promise.all(cluster.nodes.map(Cluster.health))
    }
    for (const h of all) {
      expect(h["status"]).toBe("degraded")
      expect(h["cluster"]["bus"]).not.toBe("connected")
      expect((h["reasons"] as Array<string>).some((r) => r.startsWith("bus (NATS)"))).toBe(true)
    }
    const sender = makeIdentity()
    const s = await sock(1)
    expect((await ask(s, registerFrame(sender, "default"))).type).toBe("registered")
    const hash = randomHash()
    const sent = await ask(s, {
      type: "send",
      payload: { to: makeIdentity().publicKey, encrypted: encryptedFor("while the bus is down"), messageHash: hash },
      timestamp: Date.now(),
      requestId: "r1"
    })
    expect(["message_sent", "message_queued"]).toContain(String(sent.type))
    const rows = await cluster.query("SELECT 1 FROM l2ps_messages WHERE message_hash = $1", [hash])
    expect(rows.length).toBe(1)

    await cluster.nats.start()
    const back = Date.now() + 15_000
    all = await Promise.all(cluster.nodes.map(Cluster.health))
    while (all.some((h) => h["cluster"]["bus"] !== "connected") && Date.now() < back) {
      await Bun.sleep(100)
      all = await Promise.all(cluster.nodes.map(Cluster.health))
    }
    for (const h of all) {
      expect(h["cluster"]["bus"]).toBe("connected")
      expect(h["cluster"]["busReconnects"]).toBeGreaterThanOrEqual(1)
      expect(h["status"]).toBe("ok")
    }
  }, 40_000)
})
