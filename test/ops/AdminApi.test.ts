/**
 * The admin port and `npm run admin` against the node started as a user starts it: access with
 * ADMIN_TOKEN (401 without it or with a wrong one, /health open), every network in /metrics at zero,
 * and the CLI's commands over real sockets: a message followed to `l2ps_confirmed` with a proof that
 * verifies against its batch, sessions listed, a key kicked, banned (refused) and unbanned, each
 * change logged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { networkInterfaces } from "node:os"
import { root, verifyInclusion } from "../../src/domain/Merkle.ts"
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import { bunBinary, type NodeProcess, REPO_ROOT, startNode } from "../support/NodeProcess.ts"
import { open } from "../support/RawSocket.ts"
import { ask, makeIdentity, PeerPool, registerFrame, registerRaw, waitUntil } from "../e2e/helpers.ts"

const TOKEN = "correct horse battery staple"
let node: NodeProcess
let admin: string
const pool = new PeerPool()

const adminLine = () => waitUntil(() => node.output().some((l) => l.includes('"message":"admin http://')), "the admin line", 10_000)

beforeAll(async () => {
  node = await startNode({
    env: {
      ADMIN_TOKEN: TOKEN,
      L2PS_NETWORKS: "default,quiet",
      L2PS_BATCH_INTERVAL_MS: "100",
      L1_BLOCK_INTERVAL_MS: "100",
      L1_FINALITY_DEPTH: "1",
      REGISTRATION_BURST_PER_ADDRESS: "100000"
    },
    freePortEnv: ["ADMIN_PORT", "SIGNALING_PORT"]
  })
  admin = `http://127.0.0.1:${node.env["ADMIN_PORT"]}`
  await adminLine()
})

afterAll(async () => {
  pool.disconnectAll()
  await node?.dispose()
})

const bearer = { authorization: `Bearer ${TOKEN}` }
const api = async (path: string) => {
  const res = await fetch(admin + path, { headers: bearer })
  return { status: res.status, body: await res.json() as any }
}

/** `npm run admin -- …` as an operator runs it. */
const cli = async (args: ReadonlyArray<string>, token: string = TOKEN) => {
  const proc = Bun.spawn([bunBinary(), "run", "src/cli/admin.ts", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ADMIN_URL: admin, ADMIN_TOKEN: token },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}
/** The JSON a command printed (after its summary lines, if any). */
const printed = (stdout: string) => JSON.parse(stdout.slice(stdout.search(/^[[{]/m)))

describe("admin port access", () => {
  test("listens on 127.0.0.1 by default: not on the machine's other addresses", async () => {
    expect(node.output().some((l) => l.includes(`"message":"admin http://127.0.0.1:${node.env["ADMIN_PORT"]} `))).toBe(true)
    const others = Object.values(networkInterfaces()).flat().filter((i) => i !== undefined && !i.internal && i.family === "IPv4")
    for (const i of others) {
      const reached = await fetch(`http://${i!.address}:${node.env["ADMIN_PORT"]}/health`).then(() => true, () => false)
      expect([i!.address, reached]).toEqual([i!.address, false])
    }
    // The L2PS port, on HOST (0.0.0.0), is reachable there: the refusal above is the admin port's own.
    for (const i of others.slice(0, 1)) {
      const ws = await fetch(`http://${i!.address}:${new URL(node.url).port}/`).then((r) => r.status, () => 0)
      expect(ws).toBe(426)
    }
  })

  test("with ADMIN_TOKEN: 401 without it or with a wrong one, 200 with it (bearer, or a browser's basic login); /health open", async () => {
    for (const path of ["/", "/ready", "/metrics", "/api/status", "/api/sessions", "/api/bans"]) {
      const none = await fetch(admin + path)
      expect([path, none.status]).toEqual([path, 401])
      expect(none.headers.get("www-authenticate")).toStartWith("Basic ")
      for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, "Bearer ", `Basic ${btoa(`admin:${TOKEN}x`)}`, TOKEN]) {
        expect([path, wrong, (await fetch(admin + path, { headers: { authorization: wrong } })).status]).toEqual([path, wrong, 401])
      }
      expect((await fetch(admin + path, { headers: bearer })).status).toBe(200)
      expect((await fetch(admin + path, { headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` } })).status).toBe(200)
    }
    const refusedChange = await fetch(`${admin}/api/ban`, { method: "POST", body: JSON.stringify({ key: "a".repeat(64) }) })
    expect(refusedChange.status).toBe(401)
    expect((await api("/api/bans")).body).toEqual([])
    const health = await fetch(`${admin}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: "ok", reasons: [], storage: "ok" })
  })

  test("what changes the node is POST only", async () => {
    expect((await fetch(`${admin}/api/ban`, { headers: bearer })).status).toBe(404)
    expect((await fetch(`${admin}/api/status`, { method: "POST", headers: bearer })).status).toBe(405)
  })
})

describe("bad requests", () => {
  test("a malformed path, an overlong hash, a bad seq or key: 400 with the reason; the server goes on", async () => {
    expect(await api("/api/messages/%E0%A4%A")).toEqual({ status: 400, body: { error: "malformed path" } })
    expect((await api(`/api/messages/${"a".repeat(257)}`)).status).toBe(400)
    expect(await api("/api/batches/default/-1")).toEqual({ status: 400, body: { error: "seq must be a non-negative integer" } })
    const post = (body: string) => fetch(`${admin}/api/kick`, { method: "POST", headers: bearer, body }).then(async (r) => [r.status, await r.json()])
    expect(await post("{")).toEqual([400, { error: "the body must be a JSON object" }])
    expect(await post("{}")).toEqual([400, { error: "missing key" }])
    expect((await post(JSON.stringify({ key: "not a key!" })))[0]).toBe(400)
    expect((await api("/api/status")).status).toBe(200)
  })

  test("a node alone has no cluster: /api/nodes says so (404), the status has no cluster part", async () => {
    expect(await api("/api/nodes")).toEqual({ status: 404, body: { error: "not a cluster member (NATS_URL is not set)" } })
    expect("cluster" in (await api("/api/status")).body).toBe(false)
  })
})

describe("metrics", () => {
  test("every served network appears at zero, each family's series together", async () => {
    const text = await (await fetch(`${admin}/metrics`, { headers: bearer })).text()
    for (const family of ["im_queued_messages", "im_mempool_messages", "im_batch_lag_seconds", "im_unconfirmed_batches", "im_finality_lag_seconds"]) {
      for (const uid of ["default", "quiet", "legacy"]) expect(text).toContain(`${family}{l2ps_uid="${uid}"} `)
      expect(text).toContain(`${family}{l2ps_uid="quiet"} 0\n`)
      const lines = text.split("\n").map((l, i) => [l, i] as const).filter(([l]) => l.startsWith(`${family}{`)).map(([, i]) => i)
      expect(lines[lines.length - 1]! - lines[0]!).toBe(lines.length - 1)
    }
  })
})

describe("npm run admin", () => {
  test("usage, a wrong token, an unknown message: clear refusals and exit codes", async () => {
    const usage = await cli(["frobnicate"])
    expect(usage.code).toBe(2)
    expect(usage.stdout).toContain("usage: npm run admin")
    const wrong = await cli(["status"], "nope")
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain("refused 401")
    const missing = await cli(["message", randomHash()])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("refused 404: message not found")
  })

  test("status, networks and sessions", async () => {
    const a = await pool.connect(node.url, "default")
    const b = await pool.connect(node.url, "quiet")
    const status = await cli(["status"])
    expect(status.code).toBe(0)
    expect(status.stdout.split("\n")[0]).toBe("ok")
    expect(printed(status.stdout).networks.map((n: any) => n.l2psUid)).toEqual(["default", "quiet", "legacy"])
    const networks = printed((await cli(["networks"])).stdout)
    expect(networks.find((n: any) => n.l2psUid === "quiet")).toMatchObject({ sessions: 1, pending: 0, limits: { rateLimitPerSec: 20 } })
    const all = printed((await cli(["sessions"])).stdout)
    expect(all.sessions.map((s: any) => s.key).sort()).toEqual([a.key, b.key].sort())
    const quiet = printed((await cli(["sessions", "--network", "quiet"])).stdout)
    expect(quiet).toEqual({ total: 1, sessions: [{ server: "l2ps", l2psUid: "quiet", key: b.key, sessions: 1 }] })
    pool.disconnectAll()
  })

  test("message: followed to l2ps_confirmed, with an inclusion proof that folds to its batch's root; batch: the header and its leaves", async () => {
    const a = await pool.connect(node.url, "default")
    const b = await pool.connect(node.url, "default")
    const hash = randomHash()
    await a.client.send(b.key, encryptedFor("hello"), hash)
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline && (await api(`/api/messages/${hash}`)).body[0]?.l2psStatus !== "l2ps_confirmed") await Bun.sleep(100)
    const shown = await cli(["message", hash])
    expect(shown.code).toBe(0)
    const [m] = printed(shown.stdout)
    expect(m).toMatchObject({ l2psUid: "default", from: a.key, to: b.key, messageHash: hash, l2psStatus: "l2ps_confirmed", status: "l2ps_confirmed" })
    expect(m.batch.status).toBe("confirmed")
    expect(m.batch.l2psTxHash).toMatch(/^[0-9a-f]{64}$/)
    expect(verifyInclusion(m.proof.leaf, m.proof.path, m.batch.root)).toBe(true)
    expect(JSON.stringify(m)).not.toContain("ciphertext")

    const batch = printed((await cli(["batch", "default", String(m.batch.seq)])).stdout)
    expect(batch).toMatchObject({ l2psUid: "default", seq: m.batch.seq, root: m.batch.root, l2psTxHash: m.batch.l2psTxHash, status: "confirmed" })
    expect(batch.leaves).toContain(m.proof.leaf)
    expect(root(batch.leaves)).toBe(batch.root)
    expect(batch.blockNumber).toBeGreaterThanOrEqual(0)
    expect((await cli(["batch", "default", "999999"])).code).toBe(1)
    pool.disconnectAll()
  }, 30_000)

  test("kick closes the key's sessions (4002); ban closes them (4003) and refuses it (KEY_BANNED); unban lifts it; each logged", async () => {
    const id = makeIdentity()
    const key = id.publicKey.toLowerCase()
    const sock = await open(node.url)
    await registerRaw(sock, id, "default")
    const kicked = await cli(["kick", id.publicKey])
    expect(kicked.code).toBe(0)
    expect(printed(kicked.stdout)).toEqual({ key, closed: 1 })
    expect(await sock.closed).toEqual({ code: 4002, reason: "Disconnected by the node's operator" })

    const again = await open(node.url)
    await registerRaw(again, id, "default")
    const banned = await cli(["ban", id.publicKey, "--reason", "spam"])
    expect(banned.code).toBe(0)
    expect(printed(banned.stdout)).toMatchObject({ ban: { key, reason: "spam" }, closed: 1 })
    expect(await again.closed).toEqual({ code: 4003, reason: "Banned by the node's operator" })
    const register = async () => {
      const s = await open(node.url)
      const reply = await ask(s, registerFrame(id, "default", { requestId: "r" }))
      s.close()
      return reply
    }
    expect(await register()).toMatchObject({ type: "error", requestId: "r", payload: { code: "KEY_BANNED", message: "This key is banned on this node" } })

    // (kept across restarts: test/ops/Bans.test.ts, on Postgres and PGlite)
    expect(printed((await cli(["bans"])).stdout).map((b: any) => b.key)).toEqual([key])

    const unbanned = await cli(["unban", id.publicKey])
    expect(printed(unbanned.stdout)).toEqual({ key, wasBanned: true })
    expect((await register()).type).toBe("registered")

    const records = node.output().filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    const logged = (action: string) => records.find((r) => r.annotations?.adminAction === action)
    expect(logged("kick")).toMatchObject({ logLevel: "INFO", annotations: { key, closed: 1 } })
    expect(logged("ban")).toMatchObject({ logLevel: "INFO", annotations: { key, reason: "spam", closed: 1 } })
    expect(logged("unban")).toMatchObject({ logLevel: "INFO", annotations: { key, wasBanned: true } })
  }, 60_000)
})
