/**
 * The web chat's server: its settings refused by name, and what it answers (the page built for
 * browsers, its settings, a policy that lets the page run only its own script and reach only the node).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as PageBundle from "../../src/web/PageBundle.ts"
import * as PageServer from "../../src/web/PageServer.ts"
import { DEFAULTS, fromEnv } from "../../src/web/WebConfig.ts"

describe("settings", () => {
  test("defaults, and each setting read", () => {
    expect(fromEnv({})).toEqual(DEFAULTS)
    expect(fromEnv({ WEB_HOST: "0.0.0.0", WEB_PORT: "0", WEB_NODE_URL: "wss://chat.example:443", WEB_NETWORK: "team-1", WEB_SCRYPT_N: "16384" })).toEqual({
      host: "0.0.0.0",
      port: 0,
      nodeUrl: "wss://chat.example:443",
      network: "team-1",
      scryptN: 16384
    })
  })

  test("a bad value names its variable", () => {
    expect(() => fromEnv({ WEB_PORT: "70000" })).toThrow("WEB_PORT: expected an integer from 0 to 65535")
    expect(() => fromEnv({ WEB_NODE_URL: "http://127.0.0.1:3006" })).toThrow("WEB_NODE_URL: expected ws:// or wss://")
    expect(() => fromEnv({ WEB_NODE_URL: "nowhere" })).toThrow("WEB_NODE_URL: not a URL")
    expect(() => fromEnv({ WEB_NETWORK: "a b" })).toThrow("WEB_NETWORK")
    expect(() => fromEnv({ WEB_SCRYPT_N: "1024" })).toThrow("WEB_SCRYPT_N: scrypt N must be a power of two from 16384 to 262144")
  })
})

describe("the server", () => {
  const config = { ...DEFAULTS, port: 0, nodeUrl: "ws://127.0.0.1:3999", scryptN: 16384 }
  let server: ReturnType<typeof PageServer.start>
  let base: string
  let page: PageBundle.PageBundle

  beforeAll(async () => {
    page = await PageBundle.build()
    server = PageServer.start(page, config)
    base = `http://127.0.0.1:${server.port}`
  }, 20_000)

  afterAll(() => void server?.stop(true))

  test("the script is built from the client's browser entry, with no Node module stood in for", () => {
    expect(page.modules.some((m) => m.endsWith("src/client/browser.ts"))).toBe(true)
    expect(page.modules.some((m) => m.endsWith("src/client/IndexedDbStorage.ts"))).toBe(true)
    expect(page.modules.filter((m) => m.startsWith("node:"))).toEqual([])
  })

  test("serves the page, its script, its style and its settings, each with the policy", async () => {
    const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self' ws://127.0.0.1:3999; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    for (const [path, type] of [["/", "text/html"], ["/app.js", "text/javascript"], ["/style.css", "text/css"], ["/config.json", "application/json"]] as const) {
      const r = await fetch(base + path)
      expect(r.status).toBe(200)
      expect(r.headers.get("content-type")).toStartWith(type)
      expect(r.headers.get("content-security-policy")).toBe(csp)
      expect(r.headers.get("x-content-type-options")).toBe("nosniff")
    }
    expect(await (await fetch(`${base}/config.json`)).json()).toEqual({ nodeUrl: "ws://127.0.0.1:3999", network: "default", scryptN: 16384 })
    expect(await (await fetch(`${base}/app.js`)).text()).toBe(page.js)
  })

  test("the page may connect to the node's origin, whatever path its URL has", () => {
    expect(PageServer.contentSecurityPolicy("wss://chat.example/im")).toContain("connect-src 'self' wss://chat.example;")
    expect(PageServer.contentSecurityPolicy("ws://10.0.0.2:3006")).toContain("connect-src 'self' ws://10.0.0.2:3006;")
  })

  test("nothing else: other paths are 404, other methods 405", async () => {
    expect((await fetch(`${base}/../package.json`)).status).toBe(404)
    expect((await fetch(`${base}/page/main.ts`)).status).toBe(404)
    const post = await fetch(`${base}/`, { method: "POST", body: "x" })
    expect(post.status).toBe(405)
    expect(post.headers.get("allow")).toBe("GET, HEAD")
  })
})
