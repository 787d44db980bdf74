/**
 * Every node of a cluster on each node's status: `/api/nodes`, the snapshot behind the status page,
 * the page itself in headless Chromium, and `npm run admin -- nodes`. Three nodes on a private
 * nats-server and one Postgres database: each sees all three alive with their ports, host and
 * sessions, and every job owned by exactly one of them; a node frozen (SIGSTOP) is seen stale, and
 * alive again once it runs; a node killed (SIGKILL) is seen gone by the others within seconds, owning
 * nothing, its jobs taken over. The page's screenshot is saved under test/.output/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdirSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { type Browser, chromium } from "playwright-core"
import { ask, registerFrame, waitUntil } from "../e2e/helpers.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import { bunBinary, type NodeProcess, REPO_ROOT } from "../support/NodeProcess.ts"
import { open as openRaw, type RawSocket } from "../support/RawSocket.ts"
import * as Cluster from "./Cluster.ts"

const skip = Cluster.unavailableReason()
const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const OUTPUT = join(REPO_ROOT, "test", ".output")
const JOBS = ["l1/blocks", "pipeline/default", "pipeline/legacy", "sweep/offline-expiry"]

interface Member {
  nodeId: string
  state: "alive" | "stale" | "gone"
  heartbeatAgeSeconds: number
  startedAt: number
  host: string | null
  version: string | null
  ports: { l2ps: number; legacy: number; admin: number } | null
  sessions: number | null
  owned: Array<string>
}
interface View {
  self: string
  nodes: Array<Member>
}

const adminUrl = (node: NodeProcess) => `http://127.0.0.1:${node.env["ADMIN_PORT"]}`
const nodesOf = async (node: NodeProcess): Promise<View> => {
  const res = await fetch(`${adminUrl(node)}/api/nodes`)
  expect(res.status).toBe(200)
  return (await res.json()) as View
}
/** Polls `view` of `node` until `ok` holds; fails with the last view. */
const until = async (node: NodeProcess, ok: (v: View) => boolean, what: string, timeoutMs = 15_000): Promise<View> => {
  const deadline = Date.now() + timeoutMs
  let v = await nodesOf(node)
  while (!ok(v)) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}: ${JSON.stringify(v)}`)
    await Bun.sleep(100)
    v = await nodesOf(node)
  }
  return v
}
const jobs = (m: Member) => m.owned.map((o) => o.replace(/#\d+$/, ""))

describe.skipIf(skip !== undefined)("the cluster's nodes on each node's status", () => {
  let cluster: Cluster.Cluster
  let browser: Browser | undefined
  const sockets: Array<RawSocket> = []
  beforeAll(async () => {
    cluster = await Cluster.start(3)
  }, 55_000)
  afterAll(async () => {
    for (const s of sockets) if (!s.isClosed) await s.close().catch(() => undefined)
    await browser?.close()
    await cluster?.dispose()
  })

  test("each node lists all three alive, with ports, host, version and sessions; each job owned by exactly one", async () => {
    const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess]
    const s = await openRaw(n2.url)
    sockets.push(s)
    expect((await ask(s, registerFrame(makeIdentity(), "default"))).type).toBe("registered")

    const settled = (v: View) =>
      v.nodes.length === 3 && v.nodes.every((n) => n.state === "alive" && n.ports !== null) &&
      v.nodes.find((n) => n.nodeId === "n2")?.sessions === 1 &&
      v.nodes.flatMap(jobs).sort().join() === JOBS.join()
    for (const [i, node] of [n1, n2, n3].entries()) {
      const v = await until(node, settled, `n${i + 1} to see the three nodes settled`)
      expect(v.self).toBe(`n${i + 1}`)
      expect(v.nodes.map((n) => n.nodeId)).toEqual(["n1", "n2", "n3"])
      for (const [j, m] of v.nodes.entries()) {
        const env = cluster.nodes[j]!.env
        expect(m.ports).toEqual({ l2ps: Number(env["L2PS_MESSAGING_PORT"]), legacy: Number(env["SIGNALING_PORT"]), admin: Number(env["ADMIN_PORT"]) })
        expect(m.host).toBe(hostname())
        expect(m.version).toMatch(/^\d+\.\d+\.\d+/)
        expect(m.heartbeatAgeSeconds).toBeLessThan(10)
        expect(m.sessions).toBe(j === 1 ? 1 : 0)
      }
    }
    // What each node says it owns on /health is what the others list for it.
    const v = await nodesOf(n1)
    for (const [j, node] of [n1, n2, n3].entries()) {
      const own = ((await Cluster.health(node))["cluster"]["owned"] as Array<string>).slice().sort()
      expect([`n${j + 1}`, v.nodes[j]!.owned.slice().sort()]).toEqual([`n${j + 1}`, own])
    }
    // The snapshot behind the status page carries the same view.
    const snapshot = (await (await fetch(`${adminUrl(n1)}/api/status`)).json()) as { cluster: View }
    expect(snapshot.cluster.self).toBe("n1")
    expect(snapshot.cluster.nodes.map((n) => [n.nodeId, n.state])).toEqual([["n1", "alive"], ["n2", "alive"], ["n3", "alive"]])
  }, 40_000)

  test("npm run admin -- nodes prints one line per node, this one starred", async () => {
    const proc = Bun.spawn([bunBinary(), "run", "src/cli/admin.ts", "nodes"], {
      cwd: REPO_ROOT,
      env: { ...process.env, ADMIN_URL: adminUrl(cluster.nodes[1]!), ADMIN_TOKEN: "" },
      stdout: "pipe",
      stderr: "pipe"
    })
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(0)
    const lines = stdout.split("\n")
    expect(lines[0]).toMatch(/^ {2}n1: alive, heartbeat [\d.]+ s ago, /)
    expect(lines[1]).toMatch(/^\* n2: alive, heartbeat [\d.]+ s ago, .*, 1 sessions, owns /)
    expect(lines[2]).toMatch(/^ {2}n3: alive, /)
    const json = JSON.parse(stdout.slice(stdout.search(/^\{/m))) as View
    expect(json.self).toBe("n2")
  }, 20_000)

  test.skipIf(!existsSync(CHROMIUM) && !process.env["CI"])("the status page shows the three nodes, with no console error", async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
    const page = await browser.newPage()
    const problems: Array<string> = []
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`)
    })
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))
    expect((await page.goto(`${adminUrl(cluster.nodes[0]!)}/`))?.status()).toBe(200)
    await page.waitForFunction(() => document.querySelectorAll("#nodes tr").length === 3, undefined, { timeout: 10_000 })
    expect(await page.locator("#cluster").isVisible()).toBe(true)
    const cells = await Promise.all([0, 1, 2].map((i) => page.locator("#nodes tr").nth(i).locator("td").allTextContents()))
    expect(cells.map((c) => [c[0], c[1]])).toEqual([["n1 (this node)", "alive"], ["n2", "alive"], ["n3", "alive"]])
    expect(cells.flatMap((c) => c[8]!.split(" ")).map((o) => o.replace(/#\d+$/, "")).filter((o) => o !== "–").sort()).toEqual(JOBS)
    expect(await page.locator("#nodes tr").first().locator("td").nth(1).getAttribute("class")).toContain("alive")
    mkdirSync(OUTPUT, { recursive: true })
    await page.screenshot({ path: join(OUTPUT, "status-page-cluster.png"), fullPage: true })
    expect(problems).toEqual([])
  }, 30_000)

  test("a node frozen (SIGSTOP) still holds its lock: seen stale once its heartbeat is 10 s old, alive again when it runs", async () => {
    const frozen = cluster.nodes[2]!
    process.kill(frozen.pid, "SIGSTOP")
    try {
      const v = await until(cluster.nodes[0]!, (v) => v.nodes[2]!.state !== "alive", "n3 no longer alive", 20_000)
      expect(v.nodes[2]!.state).toBe("stale")
      expect(v.nodes[2]!.heartbeatAgeSeconds).toBeGreaterThanOrEqual(10)
      expect(v.nodes.slice(0, 2).map((n) => n.state)).toEqual(["alive", "alive"])
    } finally {
      process.kill(frozen.pid, "SIGCONT")
    }
    await until(cluster.nodes[0]!, (v) => v.nodes[2]!.state === "alive", "n3 alive again", 15_000)
  }, 45_000)

  test("a node killed is seen gone by the others within seconds, owning nothing, its jobs taken over", async () => {
    // The node owning the most jobs, so that they have to move.
    const before = await nodesOf(cluster.nodes[0]!)
    const victim = before.nodes.reduce((best, n, i) => (n.owned.length > before.nodes[best]!.owned.length ? i : best), 0)
    expect(before.nodes[victim]!.owned.length).toBeGreaterThan(0)
    const survivors = [0, 1, 2].filter((i) => i !== victim)
    await cluster.nodes[victim]!.kill()
    for (const i of survivors) {
      const v = await until(
        cluster.nodes[i]!,
        (v) => v.nodes[victim]!.state === "gone" && survivors.flatMap((j) => jobs(v.nodes[j]!)).sort().join() === JOBS.join(),
        `n${victim + 1} gone and its jobs moved, seen by n${i + 1}`,
        10_000
      )
      expect(v.nodes[victim]!.owned).toEqual([])
      expect(survivors.map((j) => v.nodes[j]!.state)).toEqual(["alive", "alive"])
    }
    // Its last heartbeat stays, ageing.
    const later = await nodesOf(cluster.nodes[survivors[0]!]!)
    expect(later.nodes[victim]!.heartbeatAgeSeconds).toBeGreaterThan(0)
  }, 30_000)
})
