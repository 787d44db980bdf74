/**
 * Security review finding 10 over real sockets, the node started as a user starts it: sockets that
 * never register are closed after REGISTRATION_TIMEOUT_SECONDS on both servers, and X-Forwarded-For
 * decides the per-address limit only from a peer listed in TRUSTED_PROXIES (IPv6 clients by /64).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { expectAlive, makeIdentity, registerRaw, sleep, startE2eNode } from "../e2e/helpers.ts"
import { legacyUrl } from "./support.ts"

const UID = "default"
const tooMany = { code: 1008, reason: "Too many connections from this address" }

const sockets: RawSocket.RawSocket[] = []
afterEach(async () => {
  await Promise.all(sockets.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
  // The server has processed the closes before the next test counts connections again.
  await sleep(100)
})

/** Opens a socket (with `X-Forwarded-For` when given): "open", or how the server closed it at once. */
const attempt = async (url: string, forwardedFor?: string): Promise<RawSocket.RawSocket | RawSocket.CloseInfo> => {
  let s: RawSocket.RawSocket
  try {
    s = await RawSocket.open(url, 5000, forwardedFor === undefined ? undefined : { "X-Forwarded-For": forwardedFor })
  } catch (e) {
    const m = /closed before opening \((\d+) (.*)\)$/.exec(String(e))
    if (m === null) throw e
    return { code: Number(m[1]), reason: m[2]! }
  }
  sockets.push(s)
  const closed = await Promise.race([s.closed, sleep(250).then(() => undefined)])
  return closed ?? s
}

const opened = async (url: string, forwardedFor?: string): Promise<RawSocket.RawSocket> => {
  const r = await attempt(url, forwardedFor)
  if (!("ws" in r)) throw new Error(`expected the socket to stay open, it was closed: ${r.code} ${r.reason}`)
  return r
}

describe("registration deadline over real sockets (REGISTRATION_TIMEOUT_SECONDS=1)", () => {
  let node: NodeProcess
  beforeAll(async () => {
    node = await startE2eNode({ REGISTRATION_TIMEOUT_SECONDS: "1", MAX_CONNECTIONS_PER_ADDRESS: "3" }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await node?.dispose()
  })

  test("a socket that does not register within the deadline is closed with 4008 on both servers; a registered one stays", async () => {
    const started = Date.now()
    const idle = await opened(node.url)
    const legacyIdle = await opened(legacyUrl(node.output()))
    const member = await opened(node.url)
    await registerRaw(member, makeIdentity(), UID)
    for (const s of [idle, legacyIdle]) {
      expect(await s.closed).toEqual({ code: 4008, reason: "Not registered in time" })
    }
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(900)
    expect(elapsed).toBeLessThan(4000)
    await sleep(Math.max(0, 2500 - elapsed))
    await expectAlive(member, true)
  }, 30_000)

  test("X-Forwarded-For from a peer that is not a trusted proxy is ignored: the peer's own address is counted", async () => {
    // Registered, so the deadline does not close them meanwhile.
    for (const client of ["198.51.100.1", "198.51.100.2", "2001:db8:1::1"]) {
      await registerRaw(await opened(node.url, client), makeIdentity(), UID)
    }
    expect(await attempt(node.url, "198.51.100.3")).toEqual(tooMany)
    expect(await attempt(legacyUrl(node.output()), "198.51.100.4")).toEqual(tooMany)
  }, 30_000)
})

describe("X-Forwarded-For from a trusted proxy (TRUSTED_PROXIES=127.0.0.1,::1)", () => {
  let node: NodeProcess
  beforeAll(async () => {
    node = await startE2eNode({ TRUSTED_PROXIES: "127.0.0.1,::1", MAX_CONNECTIONS_PER_ADDRESS: "2" }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await node?.dispose()
  })

  test("the right-most untrusted hop is the address the per-address limit counts, on both servers", async () => {
    const legacy = legacyUrl(node.output())
    await opened(node.url, "198.51.100.1")
    await opened(legacy, "198.51.100.1")
    expect(await attempt(node.url, "198.51.100.1")).toEqual(tooMany)
    // What a client writes left of the proxy's hop changes nothing.
    expect(await attempt(node.url, "203.0.113.50, 198.51.100.1")).toEqual(tooMany)
    expect(await attempt(legacy, "::ffff:198.51.100.1")).toEqual(tooMany)
    // Other clients behind the same proxy are served, though 127.0.0.1 has more sockets than the cap.
    const other = await opened(node.url, "198.51.100.2")
    await registerRaw(other, makeIdentity(), UID)
    await opened(node.url, "203.0.113.50, 198.51.100.3")
  }, 30_000)

  test("IPv6 clients count by /64", async () => {
    await opened(node.url, "2001:db8:1:2::1")
    await opened(node.url, "2001:db8:1:2:ffff::2")
    expect(await attempt(node.url, "2001:db8:1:2::3")).toEqual(tooMany)
    await opened(node.url, "2001:db8:1:3::1")
  }, 30_000)
})
