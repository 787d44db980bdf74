import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { connect } from "node:net"
import pkg from "../../package.json" with { type: "json" }
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"
import { open } from "../support/RawSocket.ts"
import { ask, nextReply, PeerPool, registerRaw, requestFrame, waitUntil } from "./helpers.ts"

let node: NodeProcess
let admin: string
const pool = new PeerPool()

/** `name{labels} value` lines of a Prometheus text page, by series. */
const series = (text: string): Map<string, number> =>
  new Map(
    text.split("\n").filter((l) => l.length > 0 && !l.startsWith("#")).map((l) => {
      const at = l.lastIndexOf(" ")
      return [l.slice(0, at), Number(l.slice(at + 1))] as const
    })
  )

const scrape = async () => {
  const res = await fetch(`${admin}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get("content-type")).toContain("text/plain")
  return series(await res.text())
}

beforeAll(async () => {
  node = await startNode({ env: { LOG_LEVEL: "debug", IDLE_TIMEOUT_SECONDS: "2", RATE_LIMIT_BURST: "1000", RATE_LIMIT_PER_SEC: "1000" }, freePortEnv: ["ADMIN_PORT", "SIGNALING_PORT"] })
  admin = `http://127.0.0.1:${node.env["ADMIN_PORT"]}`
})

afterAll(async () => {
  pool.disconnectAll()
  await node?.dispose()
})

describe("operations: logs, /health, /metrics", () => {
  test("the start is logged as JSON lines with a level, the version and the node's identity", async () => {
    const lines = node.output().filter((l) => !l.startsWith("[stderr]"))
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    const ready = records.find((r) => String(r["message"]).includes("listening"))
    expect(ready).toMatchObject({ logLevel: "INFO", annotations: { version: pkg.version } })
    expect(String(ready!["message"])).toMatch(/storage pglite/)
    expect((ready!["annotations"] as Record<string, string>)["nodeKey"]).toMatch(/^[0-9a-f]{16}$/)
    // The admin server may start just after the ready line.
    await waitUntil(() => node.output().some((l) => l.includes('"message":"admin http://')), "the admin line")
  })

  test("/health reports the version, the node key, storage and sessions", async () => {
    const res = await fetch(`${admin}/health`)
    expect(res.status).toBe(200)
    const body = await res.json() as Record<string, unknown>
    expect(body).toMatchObject({ status: "ok", version: pkg.version, storage: "ok", sessions: 0 })
    expect(body["nodeKey"]).toMatch(/^[0-9a-f]{64}$/)
    expect((await fetch(`${admin}/nope`)).status).toBe(404)
    expect((await fetch(`${admin}/health`, { method: "POST" })).status).toBe(405)
  })

  test("/metrics counts sessions, messages in and out, errors by code and commit latency", async () => {
    const before = await scrape()
    for (const name of ["im_sessions", "im_connections", "im_messages_in_total", "im_messages_out_total", "im_rate_limited_total", "im_offline_expired_total", "im_replay_cache_entries", "im_replay_cache_capacity"]) {
      expect(before.has(name)).toBe(true)
    }
    const a = await pool.connect(node.url, "default")
    const b = await pool.connect(node.url, "default")
    for (let i = 0; i < 3; i++) await a.client.send(b.key, encryptedFor(`m${i}`), randomHash())
    await b.waitInbox(3)
    const raw = await open(node.url)
    const reply = await ask(raw, requestFrame("history", {}, "r1"))
    expect(reply).toMatchObject({ type: "error", requestId: "r1", payload: { code: "REGISTRATION_REQUIRED" } })
    raw.close()

    let after = await scrape()
    expect(after.get("im_sessions")).toBe((before.get("im_sessions") ?? 0) + 2)
    expect(after.get("im_messages_in_total")! - before.get("im_messages_in_total")!).toBe(3)
    expect(after.get("im_messages_out_total")! - before.get("im_messages_out_total")!).toBe(3)
    expect(after.get('im_errors_total{code="REGISTRATION_REQUIRED"}')).toBeGreaterThanOrEqual(1)
    expect(after.get("im_commit_latency_seconds_count")).toBeGreaterThanOrEqual(1)
    expect([...after.keys()].some((k) => k.startsWith("im_commit_latency_seconds_bucket{le="))).toBe(true)
    expect(after.get('im_mempool_messages{l2ps_uid="default"}')).toBeGreaterThanOrEqual(0)

    pool.disconnectAll()
    const deadline = Date.now() + 3000
    while (after.get("im_sessions") !== before.get("im_sessions") && Date.now() < deadline) after = await scrape()
    expect(after.get("im_sessions")).toBe(before.get("im_sessions")!)
  })

  test("a socket that answers no ping is closed after IDLE_TIMEOUT_SECONDS; a quiet live client stays", async () => {
    const quiet = await pool.connect(node.url, "default")
    // A bare TCP client: it upgrades, then never sends a byte, not even a pong.
    const port = new URL(node.url).port
    const socket = connect(Number(port), "127.0.0.1")
    let upgraded = false
    let closedAt = 0
    socket.on("data", (d) => void (upgraded ||= d.toString("latin1").startsWith("HTTP/1.1 101")))
    socket.on("close", () => void (closedAt = Date.now()))
    socket.on("error", () => {})
    socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
    const start = Date.now()
    await waitUntil(() => upgraded, "the upgrade")
    await waitUntil(() => closedAt > 0, "the silent socket to be closed", 15_000)
    expect(closedAt - start).toBeGreaterThanOrEqual(1500)
    // The SDK-like client answered the pings the whole time.
    expect(quiet.client.isRegistered).toBe(true)
    expect(await quiet.client.discover()).toContain(quiet.key)
  }, 30_000)

  test("group commit: 200 sends written at once share a few commits (embedded PGlite blocks the loop while it commits)", async () => {
    const a = await pool.connect(node.url, "default")
    const b = await pool.connect(node.url, "default")
    const before = (await scrape()).get("im_commit_latency_seconds_count") ?? 0
    const sock = await open(node.url)
    await registerRaw(sock, a.id, "default")
    const hashes = Array.from({ length: 200 }, () => randomHash())
    for (const h of hashes) sock.sendJson(requestFrame("send", { to: b.key, encrypted: encryptedFor("x"), messageHash: h }, h))
    const acked = new Set<unknown>()
    while (acked.size < hashes.length) {
      const f = await nextReply(sock, 10_000)
      expect(f.type).toBe("message_sent")
      acked.add(f.requestId)
    }
    await b.waitInbox(200, 10_000)
    const commits = (await scrape()).get("im_commit_latency_seconds_count")! - before
    // One commit per message would be 200.
    expect(commits).toBeLessThan(50)
    sock.close()
  }, 30_000)
})
