/**
 * Start-up mistakes, as an operator makes them: the node is started as `npm run node` starts it and
 * must exit 1 with one plain line on stderr naming the setting and what was wrong, before it says it
 * listens, and never repeating a password.
 */
import { afterEach, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pkg from "../../package.json" with { type: "json" }
import { SETTINGS } from "../../src/config/Settings.ts"
import { freePort, type NodeRun, runNode } from "../support/NodeProcess.ts"

const held: Array<{ stop: (force?: boolean) => void }> = []
afterEach(() => {
  for (const s of held.splice(0)) s.stop(true)
})

/** A port some other program already listens on (on every interface, as the node would). */
const busyPort = (): number => {
  const server = Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: () => new Response("someone else") })
  held.push(server)
  return server.port!
}

/** Exit code 1, exactly one line on stderr (matching `line`), and no "listening" line on stdout. */
const refused = (run: NodeRun, line: RegExp) => {
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 1, stderr: [expect.stringMatching(line)] })
  expect(run.stderr[0]).not.toMatch(/\bat .*\.ts:\d+/)
  expect(run.stdout.some((l) => /listening/i.test(l))).toBe(false)
}

describe("start-up mistakes stop the node with one line naming the setting", () => {
  test("a busy L2PS port (not the next free one: clients would miss it)", async () => {
    const port = busyPort()
    refused(await runNode({ env: { L2PS_MESSAGING_PORT: String(port) } }), new RegExp(`^demos-im-node: cannot start: L2PS_MESSAGING_PORT: port ${port} is already in use`))
  }, 30_000)

  test("a busy legacy port, named as the operator set it (SIGNALING_PORT or RPC_SIGNALING_PORT)", async () => {
    const port = busyPort()
    refused(await runNode({ env: { SIGNALING_PORT: String(port) } }), new RegExp(`: SIGNALING_PORT: port ${port} is already in use`))
    refused(await runNode({ env: { RPC_SIGNALING_PORT: String(port) } }), new RegExp(`: RPC_SIGNALING_PORT: port ${port} is already in use`))
  }, 30_000)

  test("a busy ADMIN_PORT, before anything says listening", async () => {
    const port = busyPort()
    refused(await runNode({ env: { ADMIN_PORT: String(port) } }), new RegExp(`: ADMIN_PORT: port ${port} is already in use \\(on 127\\.0\\.0\\.1\\)$`))
  }, 30_000)

  test("a bad value: the variable and what was wrong, every one of them", async () => {
    refused(
      await runNode({ env: { RATE_LIMIT_PER_SEC: "fast", IDLE_TIMEOUT_SECONDS: "5000" } }),
      /^demos-im-node: cannot start: .*RATE_LIMIT_PER_SEC: Expected an integer value but received "fast".*IDLE_TIMEOUT_SECONDS must be between 1 and 960/
    )
  }, 30_000)

  test("an unreachable DATABASE_URL names the variable and the host, never the password", async () => {
    const port = freePort()
    const run = await runNode({ env: { DATABASE_URL: `postgres://im:s3cret-pw@127.0.0.1:${port}/im` } })
    refused(run, new RegExp(`: DATABASE_URL: cannot connect to postgres at 127\\.0\\.0\\.1:${port}/im: \\S`))
    expect([...run.stdout, ...run.stderr].join("\n")).not.toContain("s3cret-pw")
  }, 30_000)

  test("a DATABASE_URL that is no Postgres URL is refused without repeating it", async () => {
    const run = await runNode({ env: { DATABASE_URL: "im:s3cret-pw@db-host/im" } })
    refused(run, /: DATABASE_URL must be a URL such as postgres:\/\/user:password@host:5432\/database$/)
    expect([...run.stdout, ...run.stderr].join("\n")).not.toContain("s3cret-pw")
  }, 30_000)

  test("an unknown key in the networks file is refused by name, not ignored", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "imnode-networks-"))
    try {
      const file = path.join(dir, "networks.json")
      fs.writeFileSync(file, JSON.stringify({ chat: { rateLimitPerSec: 5, ratelimitburst: 10 } }))
      refused(
        await runNode({ env: { L2PS_NETWORKS_FILE: file } }),
        /: L2PS_NETWORKS_FILE: .*networks\.json: network "chat": unknown key "ratelimitburst" \(accepted: rateLimitPerSec, rateLimitBurst,/
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})

describe("--help and --version, as npm runs them", () => {
  const npm = (script: string) => ["npm", "run", "--silent", script, "--"]

  test("npm run node -- --help lists every setting with its default and exits 0; --version prints the version", async () => {
    const help = await runNode({ cmd: npm("node"), args: ["--help"] })
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: [] })
    const text = help.stdout.join("\n")
    for (const s of SETTINGS) expect(text).toContain(`  ${s.name} `)
    expect(help.stdout).toContain(`  ${"L2PS_MESSAGING_PORT".padEnd(Math.max(...SETTINGS.map((s) => s.name.length)))}  3006`)
    const version = await runNode({ cmd: npm("node"), args: ["--version"] })
    expect(version).toEqual({ code: 0, stdout: [pkg.version], stderr: [] })
    const unknown = await runNode({ args: ["--port", "3006"] })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toEqual([expect.stringContaining('unknown argument "--port"')])
  }, 30_000)

  test("npm run chat -- --help prints its options and exits without asking for a passphrase; --version too", async () => {
    const help = await runNode({ cmd: npm("chat"), args: ["--help"], env: { CHAT_PASSPHRASE: undefined }, timeoutMs: 15_000 })
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: [] })
    const text = help.stdout.join("\n")
    for (const word of ["--home", "--server", "--network", "CHAT_PASSPHRASE", "CHAT_NODE_KEY", "/quit"]) expect(text).toContain(word)
    expect(text).not.toContain("passphrase (protects")
    expect(await runNode({ cmd: npm("chat"), args: ["--version"], timeoutMs: 15_000 })).toEqual({ code: 0, stdout: [pkg.version], stderr: [] })
  }, 30_000)
})
