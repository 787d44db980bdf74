/**
 * `npm run web` in headless Chromium: the page served as a user starts it, talking to a node started
 * as a user starts it. Two browser contexts (two people, each with their own browser storage) chat
 * through the node; two start a conversation from an invite link while its maker is away, and see
 * their messages queued, sent and delivered across a stop of the node; then a browser chats with the
 * terminal chat (`npm run chat` in tmux). Every
 * console error and uncaught page error fails the test; screenshots go to `test/.output/web/`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Subprocess } from "bun"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { formatLink, type InviteLink, newSecret, parseLink } from "../../src/client/Invite.ts"
import { encode, toSvgPath } from "../../src/client/Qr.ts"
import { startE2eNode } from "../e2e/helpers.ts"
import { bunBinary, type NodeProcess, REPO_ROOT } from "../support/NodeProcess.ts"
import * as Tmux from "../support/Tmux.ts"

const CHROMIUM = "/usr/bin/chromium"
const OUTPUT = path.join(REPO_ROOT, "test", ".output", "web")
const KEY = /^[0-9a-f]{64}$/

interface WebServer {
  readonly url: string
  readonly proc: Subprocess
  readonly output: Array<string>
}

/** `bun run src/web/serve.ts` (what `npm run web` runs) on a free port, pointed at `nodeUrl`. */
const startWeb = async (nodeUrl: string): Promise<WebServer> => {
  const proc = Bun.spawn([bunBinary(), "run", "src/web/serve.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, WEB_PORT: "0", WEB_NODE_URL: nodeUrl, WEB_SCRYPT_N: "16384" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe"
  })
  const output: Array<string> = []
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  const until = Date.now() + 20_000
  let text = ""
  while (Date.now() < until) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
    const m = /web chat on (http:\/\/\S+)/.exec(text)
    if (m !== null) {
      output.push(text)
      reader.releaseLock()
      return { url: m[1]!, proc, output }
    }
  }
  proc.kill()
  throw new Error(`the web chat did not start: ${text}${await new Response(proc.stderr).text()}`)
}

/** One person: a browser context of their own, its console watched. */
interface Person {
  readonly name: string
  readonly context: BrowserContext
  readonly page: Page
  /** console errors and uncaught exceptions, as they came */
  readonly errors: Array<string>
}

const unavailable = fs.existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`
const noTmux = !Tmux.available() && !process.env["CI"]

if (unavailable !== undefined && !process.env["CI"]) {
  describe.skip(`web chat in Chromium (skipped: ${unavailable})`, () => {
    test("two people chat through the node", () => {})
  })
} else {
  describe("web chat in Chromium", () => {
    let node: NodeProcess
    let web: WebServer
    let browser: Browser
    const people: Array<Person> = []
    const tmux = Tmux.make(`im-web-test-${process.pid}`)
    const homes: Array<string> = []

    beforeAll(async () => {
      fs.mkdirSync(OUTPUT, { recursive: true })
      const { chromium } = await import("playwright-core")
      const [n, b] = await Promise.all([
        startE2eNode({ L2PS_BATCH_INTERVAL_MS: "100", L1_BLOCK_INTERVAL_MS: "100", L1_FINALITY_DEPTH: "1" }),
        chromium.launch({ executablePath: CHROMIUM })
      ])
      node = n
      browser = b
      web = await startWeb(node.url)
    }, 30_000)

    afterAll(async () => {
      tmux.kill()
      for (const p of people) await p.context.close().catch(() => {})
      await browser?.close()
      web?.proc.kill()
      await node?.dispose()
      for (const h of homes) fs.rmSync(h, { recursive: true, force: true })
    })

    /** A tab of `context` at `url`, its console watched into `errors`. */
    const tab = async (context: BrowserContext, url: string, errors: Array<string>): Promise<Page> => {
      const page = await context.newPage()
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(`console: ${m.text()}`)
      })
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`))
      await page.goto(url)
      return page
    }

    const open = async (name: string, url = web.url): Promise<Person> => {
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
      const errors: Array<string> = []
      const person = { name, context, page: await tab(context, url, errors), errors }
      people.push(person)
      return person
    }

    /** The same person (the same browser storage) in a new tab, as after closing the page and coming back. */
    const reopen = async (p: Person): Promise<Person> => ({ ...p, page: await tab(p.context, web.url, p.errors) })

    /** Unlocks the identity this browser holds, or creates one (the passphrase typed twice); the key shown. */
    const unlock = async (p: Person, passphrase: string, create = false): Promise<string> => {
      await p.page.locator("#unlock-button", { hasText: create ? "Create identity" : "Unlock" }).and(p.page.locator(":enabled")).waitFor()
      await p.page.fill("#passphrase", passphrase)
      if (create) await p.page.fill("#passphrase-again", passphrase)
      await p.page.click("#unlock-button")
      await p.page.locator("#chat").waitFor({ state: "visible", timeout: 15_000 })
      await p.page.locator("#connection[data-state=connected]").waitFor({ timeout: 10_000 })
      const key = await p.page.inputValue("#me")
      expect(key).toMatch(KEY)
      return key
    }

    const peerButton = (p: Person, key: string) => p.page.locator(`button.peer[data-key="${key}"]`)

    const message = (p: Person, text: string) => p.page.locator("#messages li.message", { hasText: text })

    const say = async (p: Person, text: string) => {
      await p.page.fill("#text", text)
      await p.page.press("#text", "Enter")
    }

    const shoot = (p: Person, what: string) => p.page.screenshot({ path: path.join(OUTPUT, `${what}-${p.name}.png`), fullPage: true })

    test("two people chat through the node: presence, messages both ways, ✓ and ✓✓, a confirmation with a checked proof, lock and unlock", async () => {
      const alice = await open("alice")
      const bob = await open("bob")
      // a new identity's passphrase is typed twice, and must match
      await alice.page.locator("#unlock-intro", { hasText: "No identity in this browser yet" }).waitFor()
      await alice.page.fill("#passphrase", "alice's passphrase")
      await alice.page.fill("#passphrase-again", "alice's passphrasf")
      await alice.page.click("#unlock-button")
      await alice.page.locator("#unlock-status", { hasText: "the two passphrases differ" }).waitFor()
      const [keyA, keyB] = await Promise.all([unlock(alice, "alice's passphrase", true), unlock(bob, "bob's passphrase", true)])
      expect(keyA).not.toBe(keyB)
      await alice.page.locator("#notices", { hasText: "created a new identity" }).waitFor()

      // each sees the other online
      await peerButton(alice, keyB).and(alice.page.locator("[data-online=true]")).waitFor()
      await peerButton(bob, keyA).and(bob.page.locator("[data-online=true]")).waitFor()

      await peerButton(alice, keyB).click()
      await say(alice, "hello bob, from the browser")
      await message(alice, "hello bob, from the browser").and(alice.page.locator("[data-status=delivered]")).waitFor()
      expect(await message(alice, "hello bob, from the browser").locator(".receipt").textContent()).toBe("✓✓")

      // bob has it waiting under alice's name, then reads it and answers
      await peerButton(bob, keyA).locator(".unread", { hasText: "1" }).waitFor()
      await peerButton(bob, keyA).click()
      await message(bob, "hello bob, from the browser").waitFor()
      expect(await message(bob, "hello bob, from the browser").getAttribute("class")).toContain("in")
      await say(bob, "hi alice")
      await message(alice, "hi alice").waitFor()
      await message(bob, "hi alice").and(bob.page.locator("[data-status=delivered]")).waitFor()

      // a peer's markup is shown as text, never run or rendered
      const markup = `<img src=x onerror="document.title='owned'"><b>bold</b>`
      await say(bob, markup)
      await message(alice, "<b>bold</b>").waitFor()
      expect(await message(alice, "<b>bold</b>").locator(".text").textContent()).toBe(markup)
      expect(await alice.page.locator("#messages img, #messages b").count()).toBe(0)
      expect(await alice.page.title()).toBe("Demos chat")

      // the L1 confirmation of alice's message, its inclusion proof checked in the page
      await message(alice, "hello bob, from the browser").locator("button.check").click()
      const chain = message(alice, "hello bob, from the browser").locator(".chain[data-state=Confirmed]")
      await chain.waitFor({ timeout: 15_000 }).catch(async (e) => {
        throw new Error(`${e}\nthe page says: ${await message(alice, "hello bob, from the browser").locator(".chain").textContent()}`)
      })
      expect(await chain.textContent()).toMatch(/^confirmed on chain \(block \d+\) · inclusion proof checked ✓ · batch signed by node [0-9a-f]{6}…[0-9a-f]{4}$/)
      await Promise.all([shoot(alice, "chat"), shoot(bob, "chat")])

      // locked, then unlocked: a wrong passphrase is refused, the right one opens the same identity
      await alice.page.click("#lock")
      await alice.page.locator("#unlock-intro", { hasText: `This browser holds the identity ${keyA.slice(0, 6)}…${keyA.slice(-4)}` }).waitFor()
      await alice.page.fill("#passphrase", "not alice's passphrase")
      await alice.page.click("#unlock-button")
      await alice.page.locator("#unlock-status", { hasText: "wrong passphrase" }).waitFor({ timeout: 10_000 })
      await shoot(alice, "wrong-passphrase")
      expect(await alice.page.locator("#chat").isVisible()).toBe(false)
      expect(await unlock(alice, "alice's passphrase")).toBe(keyA)
      // the history stayed in the browser, sealed, with what the check found
      await peerButton(alice, keyB).click()
      await message(alice, "hi alice").waitFor()
      expect(await message(alice, "hello bob, from the browser").locator(".chain").textContent()).toMatch(/^confirmed on chain \(block \d+\) · inclusion proof checked ✓/)

      // bob away: the node keeps alice's message (✓), bob gets it when back, alice then sees ✓✓
      await bob.page.click("#lock")
      await peerButton(alice, keyB).and(alice.page.locator("[data-online=false]")).waitFor()
      await say(alice, "for when you are back")
      await message(alice, "for when you are back").and(alice.page.locator("[data-status=queued]")).waitFor()
      expect(await message(alice, "for when you are back").locator(".receipt").textContent()).toBe("✓")
      expect(await unlock(bob, "bob's passphrase")).toBe(keyB)
      await peerButton(bob, keyA).locator(".unread", { hasText: "1" }).waitFor()
      await peerButton(bob, keyA).click()
      await message(bob, "for when you are back").locator(".flag", { hasText: "while you were away" }).waitFor()
      await message(alice, "for when you are back").and(alice.page.locator("[data-status=delivered]")).waitFor()
      expect(await message(alice, "for when you are back").locator(".receipt").textContent()).toBe("✓✓")

      expect(alice.errors).toEqual([])
      expect(bob.errors).toEqual([])
    }, 40_000)

    test("a conversation from an invite link: made with its QR code, joined from the page's address while its maker's tab is closed, read when they come back; refused links say why; queued → ✓ → ✓✓ across a stop of the node", async () => {
      const inviter = await open("inviter")
      const keyA = await unlock(inviter, "inviter's passphrase", true)
      await inviter.page.click("#invite-button")
      await inviter.page.locator("#invite").waitFor({ state: "visible" })
      const link = await inviter.page.inputValue("#invite-link")
      expect(link).toMatch(new RegExp(`^demos-im:${node.url.replace(/[.]/g, "\\.")}#default/[A-Za-z0-9_-]+$`))
      expect(await inviter.page.locator("#invite-status").textContent()).toMatch(/^for one person, valid 7 days/)
      // The QR code drawn is the link's own.
      const { viewBox, d } = toSvgPath(encode(link, "M"))
      expect(await inviter.page.getAttribute("#invite-qr-path", "d")).toBe(d)
      expect(await inviter.page.getAttribute("#invite-qr", "viewBox")).toBe(`0 0 ${viewBox} ${viewBox}`)
      const pageLink = await inviter.page.inputValue("#invite-page-link")
      expect(pageLink).toBe(`${web.url.replace(/\/$/, "")}/#join=${encodeURIComponent(link)}`)
      await shoot(inviter, "invite")
      // Its maker cannot join it.
      await inviter.page.fill("#join-link", link)
      await inviter.page.click("#join-button")
      await inviter.page.locator("#join-status[data-reason=Own]", { hasText: "cannot join (your own invite): This is your own invite" }).waitFor()

      // The inviter's tab is closed: nobody of theirs is online.
      await inviter.page.close()
      const joiner = await open("joiner", pageLink)
      await joiner.page.locator("#unlock-join").waitFor({ state: "visible" })
      // The link left the address at once: a reload does not join again.
      expect(new URL(joiner.page.url()).hash).toBe("")
      const keyB = await unlock(joiner, "joiner's passphrase", true)
      await joiner.page.locator("#join-status[data-state=joined]", { hasText: `joined (${keyA.slice(0, 6)}…${keyA.slice(-4)}): write the first message` }).waitFor()
      expect(await joiner.page.inputValue("#peer-key")).toBe(keyA)
      expect(await peerButton(joiner, keyA).getAttribute("data-online")).toBe("false")
      await say(joiner, "hi, I came from your link")
      // The node keeps it for the inviter: ✓, not delivered.
      await message(joiner, "hi, I came from your link").and(joiner.page.locator("[data-status=queued]")).waitFor()
      expect(await message(joiner, "hi, I came from your link").locator(".receipt").textContent()).toBe("✓")

      // Each refusal in words, with its reason.
      const refused = async (text: string, reason: string, words: RegExp) => {
        await joiner.page.fill("#join-link", text)
        await joiner.page.click("#join-button")
        await joiner.page.locator(`#join-status[data-reason=${reason}]`, { hasText: words }).waitFor()
      }
      await refused(link, "UsedUp", /^cannot join \(used already, or withdrawn\): This one-time invite was used already/)
      await refused("demos-im:nonsense", "Malformed", /^cannot join \(not an invite link, or mistyped\): /)
      // Well-formed links of the inviter's that are for another network, out of date, or never stored.
      const like = (patch: Partial<InviteLink>) => formatLink({ ...parseLink(link), secret: newSecret(), ...patch })
      await refused(like({ l2psUid: "elsewhere" }), "Foreign", /^cannot join \(for another node or network\): This invite is for network "elsewhere"/)
      await refused(like({ expiresAt: 1_000_000_000_000 }), "Expired", /^cannot join \(expired\): This invite expired on 2001-09-09/)
      await refused(like({ oneTime: false }), "NotFound", /^cannot join \(no longer on the node\): /)
      await shoot(joiner, "joined")

      // The inviter comes back (the same browser): the joiner's message waits under the joiner's key.
      const back = await reopen(inviter)
      expect(await unlock(back, "inviter's passphrase")).toBe(keyA)
      await peerButton(back, keyB).locator(".unread", { hasText: "1" }).waitFor()
      await peerButton(back, keyB).click()
      await message(back, "hi, I came from your link").locator(".flag", { hasText: "while you were away" }).waitFor()
      await message(joiner, "hi, I came from your link").and(joiner.page.locator("[data-status=delivered]")).waitFor()
      expect(await message(joiner, "hi, I came from your link").locator(".receipt").textContent()).toBe("✓✓")

      // The node stops: what is typed is queued, not failed, then ✓ and ✓✓ once the node is back.
      await node.stop()
      await joiner.page.locator("#connection:not([data-state=connected])").waitFor()
      await say(joiner, "typed while the node is down")
      const typed = message(joiner, "typed while the node is down")
      await typed.locator(".state", { hasText: "queued" }).waitFor()
      expect(await typed.getAttribute("data-status")).toBe("sending")
      expect(await typed.locator(".receipt").textContent()).toBe("…")
      await shoot(joiner, "queued")
      node = await node.restart()
      await typed.and(joiner.page.locator("[data-status=delivered]")).waitFor({ timeout: 20_000 })
      expect(await typed.locator(".receipt").textContent()).toBe("✓✓")
      expect(await typed.locator(".state, .error").count()).toBe(0)
      await message(back, "typed while the node is down").waitFor()
      expect(await message(joiner, "typed while the node is down").count()).toBe(1)

      // Chromium itself logs each refused reconnection while the node is stopped; nothing else may show.
      const refusedSocket = /^console: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed: .*ERR_CONNECTION_REFUSED$/
      expect(back.errors.filter((e) => !refusedSocket.test(e))).toEqual([])
      expect(joiner.errors.filter((e) => !refusedSocket.test(e))).toEqual([])
    }, 60_000)

    // The terminal chat runs in tmux; without it (outside CI) only this test is skipped.
    test.skipIf(noTmux)("a browser chats with the terminal chat", async () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), "im-web-carol-"))
      homes.push(home)
      const env = { CHAT_HOME: home, CHAT_PASSPHRASE: "carol's passphrase", CHAT_SERVER: node.url, CHAT_SCRYPT_N: "16384" }
      tmux.start("carol", REPO_ROOT, `env ${Object.entries(env).map(([k, v]) => `${k}=${Tmux.shellQuote(v)}`).join(" ")} ${Tmux.shellQuote(bunBinary())} run chat`)
      const dave = await open("dave")
      const [keyC, keyD] = await Promise.all([
        tmux.waitFor("carol", /your key: ([0-9a-f]{64})/, 15_000).then((m) => m[1]!),
        unlock(dave, "dave's passphrase", true)
      ])
      await tmux.waitFor("carol", /✓ connected to ws:\/\//)

      await peerButton(dave, keyC).and(dave.page.locator("[data-online=true]")).waitFor()
      await peerButton(dave, keyC).click()
      await say(dave, "hello terminal")
      await tmux.waitFor("carol", new RegExp(`\\] ${keyD.slice(0, 6)}…${keyD.slice(-4)}: hello terminal`))
      await message(dave, "hello terminal").and(dave.page.locator("[data-status=delivered]")).waitFor()

      tmux.type("carol", `/alias dave ${keyD}`)
      tmux.type("carol", "/msg dave hello browser")
      await message(dave, "hello browser").waitFor()
      await tmux.waitFor("carol", /✓✓ dave received "hello browser"/)
      // a key that is no key: that message fails with the reason, the chat goes on
      await dave.page.fill("#talk-key", "0".repeat(64))
      await dave.page.press("#talk-key", "Enter")
      await say(dave, "to no one")
      await message(dave, "to no one").and(dave.page.locator("[data-status=failed]")).locator(".error", { hasText: /^not sent: .*key/ }).waitFor()
      expect(await message(dave, "to no one").locator(".receipt").textContent()).toBe("✗")
      await peerButton(dave, keyC).click()
      await say(dave, "still here")
      await tmux.waitFor("carol", /: still here/)
      await shoot(dave, "terminal")
      tmux.type("carol", "/quit")
      await tmux.waitFor("carol", /^bye$/m)

      expect(dave.errors).toEqual([])
    }, 30_000)
  })
}
