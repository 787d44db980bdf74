/**
 * The status page in headless Chromium (Debian's `chromium` through playwright-core), against the node
 * started as a user starts it, with ADMIN_TOKEN (the browser logs in with it as a basic password): it
 * loads with no console error, goes live, and shows a message sent during the test reaching
 * `l2ps_confirmed`; a screenshot is saved under test/.output/. Skipped where chromium is missing,
 * except in CI.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { type Browser, chromium } from "playwright-core"
import { encryptedFor, randomHash } from "../support/L2psClient.ts"
import { type NodeProcess, REPO_ROOT, startNode } from "../support/NodeProcess.ts"
import { PeerPool, waitUntil } from "../e2e/helpers.ts"

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const OUTPUT = join(REPO_ROOT, "test", ".output")
const TOKEN = "page-token"

if (!existsSync(CHROMIUM) && !process.env["CI"]) {
  describe.skip(`status page in Chromium (skipped: no chromium at ${CHROMIUM})`, () => {
    test("loads, goes live, shows a message confirmed", () => {})
  })
} else {
  describe("status page in Chromium", () => {
    let node: NodeProcess | undefined
    let browser: Browser | undefined
    const pool = new PeerPool()
    afterAll(async () => {
      pool.disconnectAll()
      await browser?.close()
      await node?.dispose()
    })

    test("loads with no console error, is live, and shows a message sent now reaching l2ps_confirmed", async () => {
      node = await startNode({
        env: {
          ADMIN_TOKEN: TOKEN,
          L2PS_BATCH_INTERVAL_MS: "100",
          L1_BLOCK_INTERVAL_MS: "100",
          L1_FINALITY_DEPTH: "1",
          REGISTRATION_BURST_PER_ADDRESS: "100000"
        },
        freePortEnv: ["ADMIN_PORT", "SIGNALING_PORT"]
      })
      const n = node
      await waitUntil(() => n.output().some((l) => l.includes('"message":"admin http://')), "the admin line", 10_000)
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
      const context = await browser.newContext({ httpCredentials: { username: "operator", password: TOKEN }, viewport: { width: 1280, height: 1000 } })
      const page = await context.newPage()
      const problems: Array<string> = []
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`)
      })
      page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))

      const res = await page.goto(`http://127.0.0.1:${n.env["ADMIN_PORT"]}/`)
      expect(res?.status()).toBe(200)
      await page.waitForFunction(() => document.getElementById("health")?.textContent === "ok", undefined, { timeout: 10_000 })
      expect(await page.locator("#networks tr").first().locator("td").first().textContent()).toBe("default")

      const a = await pool.connect(n.url, "default")
      const b = await pool.connect(n.url, "default")
      const hash = randomHash()
      await a.client.send(b.key, encryptedFor("seen on the page"), hash)
      await b.waitInbox(1)
      await page.fill("#hash", hash)
      await page.click("#find button")
      // The page polls: the message row moves on to l2ps_confirmed by itself.
      await page.waitForFunction(
        () => Array.from(document.querySelectorAll("#messages td")).some((td) => td.textContent === "l2ps_confirmed"),
        undefined,
        { timeout: 15_000 }
      )
      const row = await page.locator("#messages tr").first().locator("td").allTextContents()
      expect(row[0]).toBe("default")
      expect(row[3]).toBe("l2ps_confirmed")
      expect(row[6]).toMatch(/^\d+$/)
      await page.waitForFunction(() => Number(document.getElementById("sessions")?.textContent) === 2, undefined, { timeout: 5_000 })
      await page.waitForFunction(() => Array.from(document.querySelectorAll("#batches td")).some((td) => td.textContent === "confirmed"), undefined, { timeout: 5_000 })
      await page.waitForFunction(() => (document.getElementById("lineIn")?.getAttribute("points") ?? "").split(" ").length >= 2, undefined, { timeout: 5_000 })

      mkdirSync(OUTPUT, { recursive: true })
      await page.screenshot({ path: join(OUTPUT, "status-page.png"), fullPage: true })
      expect(problems).toEqual([])
    }, 60_000)
  })
}
