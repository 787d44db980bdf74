/**
 * A connection that cannot be made fails with an error a developer can act on: it names the URL and
 * says whether the connection was refused, timed out, or was closed by the server, through
 * `openMessenger` as the README's example calls it. The SDK's class keeps the SDK's text.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { openMessenger } from "../../src/client/Home.ts"
import { generateIdentity, signFnOf } from "../../src/client/L2psCrypto.ts"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import * as L2psPeer from "../../src/client/L2psPeer.ts"
import { Effect } from "effect"
import { freePort } from "../support/NodeProcess.ts"

const FAST_KDF = { N: 2 ** 14, r: 8, p: 1 }
const homes: Array<string> = []
const cleanup: Array<() => void> = []
afterAll(() => {
  for (const c of cleanup) c()
  for (const h of homes) fs.rmSync(h, { recursive: true, force: true })
})

const failureOf = async (serverUrl: string, connect = 1500) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "connect-errors-"))
  homes.push(home)
  const started = Date.now()
  const error = await openMessenger({ serverUrl, home, passphrase: "pw", kdf: FAST_KDF, timeouts: { connect } }).then(
    () => undefined,
    (e: unknown) => e as Error & { readonly code?: string }
  )
  return { error: error!, millis: Date.now() - started }
}

describe("connection errors", () => {
  test("nothing listening: refused, with the URL", async () => {
    const url = `ws://127.0.0.1:${freePort()}`
    const { error } = await failureOf(url)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe("CONNECTION_REFUSED")
    expect(error.message).toBe(`cannot connect to ${url}: the connection was refused (is a node running there? check the URL and port)`)
  })

  test("a server that accepts the TCP connection and never answers: timed out, with the URL and the time waited", async () => {
    const silent = net.createServer(() => undefined)
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    cleanup.push(() => silent.close())
    const url = `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
    const { error, millis } = await failureOf(url, 1200)
    expect(error.code).toBe("CONNECT_TIMEOUT")
    expect(error.message).toStartWith(`cannot connect to ${url}: no answer within 1.2s (connection timed out`)
    expect(millis).toBeGreaterThanOrEqual(1100)
  })

  test("a server that closes the WebSocket before registration: closed by the server, with its code and reason", async () => {
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
      websocket: { open: (ws) => ws.close(1013, "node shutting down"), message: () => undefined }
    })
    cleanup.push(() => void server.stop(true))
    const url = `ws://127.0.0.1:${server.port}`
    const { error } = await failureOf(url)
    expect(error.code).toBe("CONNECTION_CLOSED")
    expect(error.message).toBe(`cannot connect to ${url}: the server closed the connection (code 1013: node shutting down)`)
  })

  test("a runtime without WebSocket is told how to get one, at once", async () => {
    const saved = globalThis.WebSocket
    // @ts-expect-error: a runtime without WebSocket (Node 20 without --experimental-websocket)
    delete globalThis.WebSocket
    try {
      const { error, millis } = await failureOf("ws://127.0.0.1:9")
      expect(error.code).toBe("NO_WEBSOCKET")
      expect(error.message).toContain("--experimental-websocket")
      expect(millis).toBeLessThan(1500)
    } finally {
      globalThis.WebSocket = saved
    }
  })

  test("the SDK's class keeps the SDK's rejection text", async () => {
    const id = generateIdentity()
    const peer = new L2PSMessagingPeer({
      serverUrl: `ws://127.0.0.1:${freePort()}`,
      publicKey: id.publicKey,
      l2psUid: "default",
      signFn: signFnOf(id),
      timeouts: { connect: 1000 }
    })
    cleanup.push(() => void peer.dispose())
    expect(await peer.connect().then(() => "connected", (e: Error) => e.message)).toBe("Connection timeout (1s)")
  })
})

describe("reconnecting", () => {
  test("announces attempts 1..maxAttempts, never one past the last, then gives up", async () => {
    const id = generateIdentity()
    const events: Array<string> = []
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const peer = yield* L2psPeer.make({
        serverUrl: `ws://127.0.0.1:${freePort()}`,
        publicKey: id.publicKey,
        l2psUid: "default",
        signFn: signFnOf(id),
        reconnect: { baseDelayMillis: 5, maxDelayMillis: 5, maxAttempts: 3 },
        timeouts: { connect: 3000 },
        onEvent: (e) => {
          if (e._tag === "Retrying") events.push(`retry ${e.attempt}`)
          if (e._tag === "Error") events.push(e.error.message)
        }
      })
      const started = Date.now()
      const failed = yield* Effect.flip(peer.connect)
      // Out of attempts, a first connect fails at once, saying why, not at its timeout.
      expect(failed.code).toBe("CONNECTION_REFUSED")
      expect(Date.now() - started).toBeLessThan(2500)
    })))
    expect(events).toEqual(["retry 1", "retry 2", "retry 3", "Gave up reconnecting to " + events.at(-1)!.slice("Gave up reconnecting to ".length)])
    expect(events.at(-1)).toStartWith("Gave up reconnecting to ws://127.0.0.1:")
  })
})
