/**
 * The browser entry in headless Chromium: the bundle (`bun build --target browser`) is served from
 * 127.0.0.1, two messengers in two browser contexts (two profiles: their own IndexedDB) exchange a
 * message with its receipt through a real node, and after a reload the same identity and history
 * unlock from IndexedDB with the passphrase, a wrong one refused. What IndexedDB holds is sealed; a
 * second tab on an identity already open is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import { join } from "node:path"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { startE2eNode } from "../e2e/helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const unavailable = fs.existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM}`

const PAGE = `<!doctype html><meta charset="utf-8"><title>client</title>
<script type="module">import * as client from "/client.js"; window.client = client; window.ready = true</script>`

/** The page's view of a messenger; kept on `window` between evaluations. */
declare global {
  interface Window {
    client: typeof import("../../src/client/browser.ts")
    ready: boolean
    m: import("../../src/client/OpenMessenger.ts").MessengerHandle
    inbox: Array<{ text: string; peer: string }>
    delivered: Array<string>
  }
}

const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }

if (unavailable !== undefined && !process.env["CI"]) {
  describe.skip(`browser entry in Chromium (skipped: ${unavailable})`, () => {
    test("two browsers chat through a node; a reload unlocks the same identity", () => {})
  })
} else {
  describe("browser entry in Chromium", () => {
    let node: NodeProcess
    let server: ReturnType<typeof Bun.serve>
    let browser: Browser
    const contexts: Array<BrowserContext> = []
    const problems: Array<string> = []

    beforeAll(async () => {
      const built = await Bun.build({ entrypoints: [join(import.meta.dir, "../../src/client/browser.ts")], target: "browser", minify: true })
      if (!built.success) throw new Error(built.logs.join("\n"))
      const bundle = await built.outputs[0]!.text()
      server = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch: (req) =>
          new URL(req.url).pathname === "/client.js"
            ? new Response(bundle, { headers: { "content-type": "text/javascript" } })
            : new Response(PAGE, { headers: { "content-type": "text/html" } })
      })
      node = await startE2eNode()
      browser = await chromium.launch({ executablePath: CHROMIUM })
    }, 60_000)

    afterAll(async () => {
      await browser?.close()
      void server?.stop(true)
      await node?.dispose()
    })

    const openPage = async (context?: BrowserContext): Promise<Page> => {
      const ctx = context ?? (await browser.newContext())
      if (context === undefined) contexts.push(ctx)
      const page = await ctx.newPage()
      page.on("console", (m) => void (m.type() === "error" && problems.push(`console: ${m.text()}`)))
      page.on("pageerror", (e) => void problems.push(`page error: ${e.message}`))
      await page.goto(`http://127.0.0.1:${server.port}/`)
      await page.waitForFunction(() => window.ready === true)
      return page
    }

    /** Opens the messenger in `page`; its public key, or the error's message. */
    const open = (page: Page, passphrase: string, options: { connect?: boolean; inMemory?: boolean } = {}) =>
      page.evaluate(async ({ serverUrl, passphrase, kdf, options }) => {
        try {
          window.inbox = []
          window.delivered = []
          window.m = await window.client.openMessenger({ serverUrl, passphrase, kdf, ...options })
          window.m.onMessage((r) => void window.inbox.push({ text: r.text, peer: r.peer }))
          window.m.onEvent((e) => void (e._tag === "Delivered" && window.delivered.push(e.record.messageHash)))
          return { publicKey: window.m.publicKey, created: window.m.created }
        } catch (e) {
          return { error: e instanceof Error ? e.message : String(e) }
        }
      }, { serverUrl: node.url, passphrase, kdf: FAST_KDF, options })

    test("two browsers chat through a node; a reload unlocks the same identity and history; a wrong passphrase is refused", async () => {
      const alicePage = await openPage()
      const bobPage = await openPage()
      const alice = await open(alicePage, "alice's passphrase")
      const bob = await open(bobPage, "bob's passphrase")
      expect(alice).toMatchObject({ created: true })
      expect(bob).toMatchObject({ created: true })
      if (!("publicKey" in alice) || !("publicKey" in bob)) throw new Error("not opened")

      const sent = await alicePage.evaluate(async (to) => {
        const r = await window.m.send(to, "hello from Chromium")
        return { status: r.status, messageHash: r.messageHash }
      }, bob.publicKey!)
      // "delivered" when Bob's receipt overtook the node's reply to the send.
      expect(["sent", "delivered"]).toContain(sent.status)
      await bobPage.waitForFunction(() => window.inbox.length > 0)
      expect(await bobPage.evaluate(() => window.inbox)).toEqual([{ text: "hello from Chromium", peer: alice.publicKey! }])
      await alicePage.waitForFunction((hash) => window.delivered.includes(hash), sent.messageHash)

      // What IndexedDB holds is sealed: neither the text nor the secret key is in it.
      const stored = await bobPage.evaluate(() =>
        new Promise<string>((resolve, reject) => {
          const r = indexedDB.open("demos-im")
          r.onsuccess = () => {
            const all = r.result.transaction("chunks").objectStore("chunks").getAll()
            all.onsuccess = () => resolve((all.result as Array<string>).join("\n"))
            all.onerror = () => reject(all.error)
          }
          r.onerror = () => reject(r.error)
        })
      )
      expect(stored).toContain(bob.publicKey!)
      expect(stored).not.toContain("hello from Chromium")
      expect(stored).toContain("\"ciphertext\"")

      // Bob's tab is reloaded: the same identity and history come back from IndexedDB.
      await bobPage.evaluate(() => window.m.close())
      await bobPage.reload()
      await bobPage.waitForFunction(() => window.ready === true)
      expect(await open(bobPage, "not bob's passphrase", { connect: false })).toEqual({ error: "wrong passphrase (or a damaged identity file)" })
      expect(await open(bobPage, "bob's passphrase")).toEqual({ publicKey: bob.publicKey!, created: false })
      const history = await bobPage.evaluate((peer) => window.m.conversation(peer).then((rs) => rs.map((r) => [r.direction, r.text])), alice.publicKey!)
      expect(history).toEqual([["in", "hello from Chromium"]])

      // And the conversation goes on after the reload.
      await bobPage.evaluate((to) => window.m.send(to, "back again"), alice.publicKey!)
      await alicePage.waitForFunction(() => window.inbox.some((m) => m.text === "back again"))

      // In memory: a new identity every time, nothing written to IndexedDB.
      const guestPage = await openPage()
      const guest = await open(guestPage, "guest", { connect: false, inMemory: true })
      expect(guest).toMatchObject({ created: true })
      expect(await guestPage.evaluate(() => indexedDB.databases().then((ds) => ds.map((d) => d.name)))).toEqual([])

      // A second tab on Alice's identity is refused while the first holds it (it would fork the
      // history chain), and opens once the first has closed.
      const aliceTab2 = await openPage(contexts[0])
      expect(await open(aliceTab2, "alice's passphrase", { connect: false })).toEqual({
        error: "cannot open indexedDB:demos-im: this identity is open in another tab or window: close it there first"
      })
      await alicePage.evaluate(() => window.m.close())
      expect(await open(aliceTab2, "alice's passphrase", { connect: false })).toEqual({ publicKey: alice.publicKey!, created: false })

      for (const page of [aliceTab2, bobPage, guestPage]) await page.evaluate(() => window.m.close())
      expect(problems).toEqual([])
    }, 60_000)
  })
}
