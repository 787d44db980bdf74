/**
 * Finding 8, the client's side: a node answers `discover` at most DISCOVER_MAX_PEERS keys a page; the
 * SDK-shaped request gets the first page (and a `nextCursor` it may ignore), and our client follows the
 * cursor to the whole list. Over real WebSockets, the node started as a user starts it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, signFnOf } from "../../src/client/L2psCrypto.ts"
import { ask, requestFrame, startE2eNode } from "../e2e/helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"

const PEERS = 8
let node: NodeProcess
const clients: Array<L2PSMessagingPeer> = []

beforeAll(async () => {
  node = await startE2eNode({ DISCOVER_MAX_PEERS: "3" }, { readyTimeoutMs: 90_000 })
}, 100_000)
afterAll(async () => {
  for (const c of clients) c.disconnect()
  await node?.dispose()
})

describe("discover in pages", () => {
  test("the SDK's request gets a bounded first page; our client follows nextCursor to every key", async () => {
    const keys: Array<string> = []
    for (let i = 0; i < PEERS; i++) {
      const id = generateIdentity()
      const client = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: id.publicKey, l2psUid: "default", signFn: signFnOf(id) })
      clients.push(client)
      const registered = await client.connect()
      expect(registered.onlinePeers.length).toBe(Math.min(i, 3))
      keys.push(id.publicKey)
    }
    expect((await clients[0]!.discover()).sort()).toEqual([...keys].sort())

    const raw = await RawSocket.open(node.url)
    const id = generateIdentity()
    const ts = Date.now()
    const reg = await ask(raw, { type: "register", payload: { publicKey: id.publicKey, l2psUid: "default", proof: signFnOf(id)(`register:${id.publicKey}:${ts}`) }, timestamp: ts, requestId: "r" })
    expect(reg.type).toBe("registered")
    const first = await ask(raw, requestFrame("discover", {}, "d"))
    expect(first.payload.peers.length).toBe(3)
    expect(first.payload.nextCursor).toBe("3")
    await raw.close()
  }, 60_000)
})
