/**
 * The client as a package: `npm pack` in packages/client builds it (ESM JavaScript and .d.ts), the
 * tarball installs into an empty folder (offline: its dependencies are linked from this repository's
 * node_modules), and plain Node, with no Bun and no TypeScript, runs two messengers from it that
 * exchange messages with receipts through a real node. The README's minimal example runs there too,
 * exactly as printed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startE2eNode } from "../e2e/helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { REPO_ROOT } from "../support/NodeProcess.ts"

const PACKAGE = path.join(REPO_ROOT, "packages/client")
const manifest = JSON.parse(fs.readFileSync(path.join(PACKAGE, "package.json"), "utf8")) as {
  readonly name: string
  readonly dependencies: Record<string, string>
}

let node: NodeProcess
let work: string
let app: string

/** The README's first `js` block under "## Client library": the minimal example, as printed. */
const readmeExample = (): string => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("\n## Client library"))
  const block = /\n```js\n([\s\S]*?)\n```\n/.exec(section)
  if (block === null) throw new Error("README.md: no js block under \"## Client library\"")
  return `${block[1]}\n`
}

const nodeFlags = () => {
  const major = Number(/^v(\d+)/.exec(run("node", ["--version"], app).trim())?.[1])
  // Node 20 has WebSocket behind a flag (global from 22 on); the README says so.
  return major < 22 ? ["--experimental-websocket"] : []
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) => {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 })
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "client-package-"))
  app = path.join(work, "app")
  fs.mkdirSync(app)
  // `npm pack` runs the package's build (prepack).
  run("npm", ["pack", "--pack-destination", work], PACKAGE)
  const tarball = fs.readdirSync(work).find((f) => f.endsWith(".tgz"))!
  const linked = Object.fromEntries(Object.keys(manifest.dependencies).map((d) => [d, `file:${path.join(REPO_ROOT, "node_modules", d)}`]))
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({
    name: "app",
    private: true,
    type: "module",
    dependencies: { ...linked, [manifest.name]: `file:${path.join(work, tarball)}` }
  }))
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--cache", path.join(work, "npm-cache")], app)
  node = await startE2eNode()
}, 120_000)

afterAll(async () => {
  await node?.dispose()
  fs.rmSync(work, { recursive: true, force: true })
})

describe("the client package", () => {
  test("the tarball holds compiled JavaScript and declarations only, with .js imports", () => {
    const installed = path.join(app, "node_modules", manifest.name)
    const files = (fs.readdirSync(installed, { recursive: true }) as Array<string>).filter((f) => fs.statSync(path.join(installed, f)).isFile())
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([])
    expect(files).toContain("dist/client/index.js")
    expect(files).toContain("dist/client/index.d.ts")
    expect(files).toContain("dist/client/browser.js")
    expect(files).toContain("dist/client/browser.d.ts")
    // Only the client and the domain modules it imports: never the server.
    expect(files.filter((f) => f.startsWith("dist/") && !f.startsWith("dist/client/") && !f.startsWith("dist/domain/"))).toEqual([])
    expect(files).not.toContain("dist/domain/Merkle.js")
    const relativeTs = /from\s*["']\.{1,2}\/[^"']+\.ts["']/
    expect(files.filter((f) => /\.(d\.ts|js)$/.test(f) && relativeTs.test(fs.readFileSync(path.join(installed, f), "utf8")))).toEqual([])
  })

  test("plain Node runs two messengers from it: messages both ways, each with its receipt; the browser entry runs too", () => {
    const script = path.join(app, "two-clients.mjs")
    fs.copyFileSync(path.join(import.meta.dir, "fixtures/two-clients.mjs"), script)
    const out = run("node", [...nodeFlags(), script], app, { DEMOS_IM_URL: node.url, DEMOS_IM_HOMES: path.join(work, "homes") })
    const r = JSON.parse(out.trim().split("\n").at(-1)!)
    expect(r.bun).toBe(false)
    expect(Number(/^v(\d+)/.exec(r.node)?.[1])).toBeGreaterThanOrEqual(20)
    // "delivered" when Bob's receipt overtook the node's reply to the send.
    expect(["sent", "delivered"]).toContain(r.sent.status)
    expect(r.received).toEqual({ text: "hello Bob, from Node", from: r.alice, messageHash: r.sent.messageHash })
    expect(r.delivered).toEqual({ status: "delivered", messageHash: r.sent.messageHash })
    expect(r.reply).toEqual({ text: "hello Alice", from: r.bob })
    expect(r.replyDelivered).toBe("delivered")
    expect(r.history).toEqual([["out", "hello Bob, from Node", "delivered"], ["in", "hello Alice", "received"]])
    expect(r.carol).toEqual({ text: "hello Carol", fromAlice: true, created: true })
    // Keys and history went to the folders, sealed: no plaintext on disk.
    const log = fs.readFileSync(path.join(work, "homes", "alice", "messages.log"), "utf8")
    expect(log.length).toBeGreaterThan(0)
    expect(log).not.toContain("hello")
  })

  test("the README's minimal example, as printed, in at most 25 lines: Alice invites, Bob joins from the link and writes, Alice reads it, Bob sees ✓✓", () => {
    const code = readmeExample()
    expect(code.trimEnd().split("\n").length).toBeLessThanOrEqual(25)
    expect(code).toContain(".invite(")
    expect(code).toContain(".join(link)")
    const script = path.join(app, "readme-example.mjs")
    fs.writeFileSync(script, code)
    const homes = path.join(work, "readme-homes")
    const out = run("node", [...nodeFlags(), script], app, { DEMOS_IM_SERVER: node.url, DEMOS_IM_HOME: homes })
    const lines = out.trim().split("\n")
    const link = /^invite link: (demos-im:\S+)$/.exec(lines[0] ?? "")?.[1]
    expect(link?.startsWith(`demos-im:${node.url}#default/`)).toBe(true)
    expect(link!.length).toBeLessThan(200)
    expect(lines[1]).toMatch(/^alice got "hello Alice, I came from your link" from [0-9a-f]{8}…$/)
    expect(lines.slice(2)).toEqual(["✓✓ delivered: hello Alice, I came from your link"])
    // Keys and history went to the folders, sealed: no plaintext on disk.
    const bobLog = fs.readFileSync(path.join(homes, "bob", "messages.log"), "utf8")
    expect(bobLog.length).toBeGreaterThan(0)
    expect(bobLog).not.toContain("hello")
    expect(fs.existsSync(path.join(homes, "alice", "identity.json"))).toBe(true)
  })
})
