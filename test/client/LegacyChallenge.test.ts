/**
 * Issue 13 #4 from the client's side, over real sockets against the node started as a user starts it:
 * our `MessagingPeer` registers with the challenge extension, after which a captured static proof of its
 * id no longer registers; and a client whose id is taken over by its own newer registration stays away.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { MessagingPeer } from "../../src/client/MessagingPeer.ts"
import { legacyKeysFromSeed, newMasterSeed, registrationProof } from "../../src/client/MlKemAes.ts"
import type { ConnectionState } from "../../src/client/Wire.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"

const T = 30_000
let node: NodeProcess
let url: string
const cleanup: Array<() => unknown> = []

beforeAll(async () => {
  node = await startNode({ freePortEnv: ["SIGNALING_PORT"] })
  const m = node.output().map((l) => /legacy ws:\/\/([^\s:,"]+):(\d+)/.exec(l)).find((x) => x !== null)
  if (!m) throw new Error(`no legacy URL in the node's output:\n${node.outputText()}`)
  url = `ws://127.0.0.1:${m[2]}`
}, T)

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  await node?.dispose()
})

/** One raw request on a fresh socket: the first frame the server answers. */
const rawRequest = (frame: unknown): Promise<{ type: string; payload: any }> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => reject(new Error("no reply within 5 s")), 5000)
    ws.onopen = () => ws.send(JSON.stringify(frame))
    ws.onmessage = (e) => {
      clearTimeout(timer)
      ws.close()
      resolve(JSON.parse(String(e.data)))
    }
    ws.onerror = () => reject(new Error("socket error"))
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("our legacy client and the registration challenge (issue 13 #4)", () => {
  test("our MessagingPeer registers with the challenge: a captured static registration of its id is refused afterwards", async () => {
    const masterSeed = newMasterSeed()
    const ours = new MessagingPeer({ serverUrl: url, clientId: "challenged-alice", masterSeed })
    cleanup.push(() => ours.dispose())
    await ours.connect()
    // What a 2.9.1 registration of the same keys looks like on the wire, as an eavesdropper has it.
    const keys = legacyKeysFromSeed(masterSeed)
    const replay = await rawRequest({
      type: "register",
      payload: { clientId: "challenged-alice", publicKey: Array.from(keys.kem.publicKey), verification: registrationProof(keys) }
    })
    expect(replay).toMatchObject({
      type: "error",
      payload: { errorType: "INVALID_PROOF", details: "Client ID challenged-alice requires a challenge-signed registration" }
    })
    expect(ours.isConnected).toBe(true)
    expect(await ours.discoverPeers()).toEqual(["challenged-alice"])
  }, T)

  test("a client whose id its own newer registration took over (4001) is told and stays away", async () => {
    const masterSeed = newMasterSeed()
    const first = new MessagingPeer({ serverUrl: url, clientId: "twice", masterSeed, reconnect: { baseDelayMillis: 100 } })
    cleanup.push(() => first.dispose())
    const errors: Array<{ type: string; details: string }> = []
    const states: Array<ConnectionState> = []
    first.onError((e) => errors.push(e))
    first.onConnectionStateChange((s) => states.push(s))
    await first.connect()
    const second = new MessagingPeer({ serverUrl: url, clientId: "twice", masterSeed })
    cleanup.push(() => second.dispose())
    await second.connect()
    await sleep(1500)
    expect(errors.map((e) => e.type)).toContain("SESSION_REPLACED")
    expect(first.isConnected).toBe(false)
    expect(states.at(-1)).toBe("disconnected")
    // Still the second's: the first did not come back to take it over in turn.
    expect(second.isConnected).toBe(true)
    expect(await second.discoverPeers()).toContain("twice")
  }, T)
})
