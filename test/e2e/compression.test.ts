/**
 * WS_COMPRESSION (issue 16): a node that compresses still serves every client. Clients that offer
 * permessage-deflate (Bun's and browsers' WebSocket, hence the SDK-compatible `L2PSMessagingPeer` and
 * our `Messenger`) get it; a socket that offers nothing is served plain frames, unchanged; `off`
 * negotiates nothing, and the other settings really shrink what the server sends.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Queue } from "effect"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, type Identity, messageHashOf, openTextFrom, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import type { IncomingMessagePayload, ReceiptPayload } from "../../src/client/Wire.ts"
import type { WsCompression } from "../../src/config/WsCompression.ts"
import * as BunTransport from "../../src/transport/BunTransport.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"

const T = 30_000
let node: NodeProcess
const cleanup: Array<() => unknown> = []

const waitUntil = async (check: () => boolean, what: string, ms = 8000) => {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timeout after ${ms} ms waiting for ${what}`)
    await Bun.sleep(10)
  }
}

/** A bare socket: `deflate: false` offers no extension, as a client without permessage-deflate. */
const raw = async (url: string, deflate: boolean) => {
  const ws = new WebSocket(url, { perMessageDeflate: deflate } as any)
  const frames: Array<any> = []
  ws.binaryType = "arraybuffer"
  ws.onmessage = (ev) => frames.push(JSON.parse(typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data as ArrayBuffer)))
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = reject
  })
  cleanup.push(() => ws.close())
  return { ws, frames }
}

let lastTs = 0
const register = async (sock: Awaited<ReturnType<typeof raw>>, id: Identity, capabilities: Array<string> = []) => {
  const timestamp = (lastTs = Math.max(Date.now(), lastTs + 1))
  sock.ws.send(JSON.stringify({
    type: "register",
    payload: { publicKey: id.publicKey, l2psUid: "default", proof: signFnOf(id)(`register:${id.publicKey}:${timestamp}`), capabilities },
    timestamp,
    requestId: `r${timestamp}`
  }))
  await waitUntil(() => sock.frames.some((f) => f.type === "registered"), "registered")
}

beforeAll(async () => {
  node = await startNode({ env: { ADMIN_PORT: "0", WS_COMPRESSION: "4KB", REGISTRATION_BURST_PER_ADDRESS: "100000" }, freePortEnv: ["SIGNALING_PORT"] })
}, T)

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  await node?.dispose()
})

describe("a node with WS_COMPRESSION=4KB", () => {
  test("negotiates permessage-deflate with a client that offers it, and nothing with one that does not", async () => {
    expect((await raw(node.url, true)).ws.extensions).toContain("permessage-deflate")
    expect((await raw(node.url, false)).ws.extensions).toBe("")
  }, T)

  test("the SDK's L2PSMessagingPeer (compressed) and a plain socket exchange messages, acks and receipts both ways, small and large", async () => {
    const a = generateIdentity()
    const alice = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: a.publicKey, l2psUid: "default", signFn: signFnOf(a), autoAck: true })
    cleanup.push(() => alice.dispose())
    const inbox: Array<IncomingMessagePayload> = []
    const receipts: Array<ReceiptPayload> = []
    alice.onMessage((m) => inbox.push(m))
    alice.onMessageDelivered((r) => receipts.push(r))
    await alice.connect()

    const b = generateIdentity()
    const bob = await raw(node.url, false)
    expect(bob.ws.extensions).toBe("")
    await register(bob, b, ["ack"])

    // 60 KB crosses the 4 KB window many times over; the short one follows in the same context.
    for (const text of ["x".repeat(60_000) + " end", "hello bob"]) {
      const encrypted = sealFor(a, b.publicKey, text)
      const messageHash = messageHashOf(a.publicKey, b.publicKey, encrypted, Date.now())
      expect(await alice.send(b.publicKey, encrypted, messageHash)).toEqual({ messageHash, l2psStatus: "submitted" })
      await waitUntil(() => bob.frames.some((f) => f.type === "message" && f.payload.messageHash === messageHash), "bob's message")
      const got = bob.frames.find((f) => f.type === "message" && f.payload.messageHash === messageHash)
      expect(openTextFrom(b, got.payload.from, got.payload.encrypted)).toBe(text)
      bob.ws.send(JSON.stringify({ type: "ack", payload: { messageHashes: [messageHash] }, timestamp: Date.now(), requestId: `a-${messageHash.slice(0, 8)}` }))
      await waitUntil(() => receipts.some((r) => r.messageHash === messageHash), "alice's receipt")
    }

    const back = sealFor(b, a.publicKey, "hello alice, uncompressed")
    const backHash = messageHashOf(b.publicKey, a.publicKey, back, Date.now())
    bob.ws.send(JSON.stringify({ type: "send", payload: { to: a.publicKey, encrypted: back, messageHash: backHash }, timestamp: Date.now(), requestId: "s1" }))
    await waitUntil(() => inbox.some((m) => m.messageHash === backHash), "alice's message")
    expect(openTextFrom(a, b.publicKey, inbox.find((m) => m.messageHash === backHash)!.encrypted)).toBe("hello alice, uncompressed")
    await waitUntil(() => bob.frames.some((f) => f.type === "message_delivered" && f.payload.messageHash === backHash), "bob's receipt (alice acked)")
  }, T)

  test("our Messenger: a message, its receipt, and presence", async () => {
    const a = generateIdentity()
    const b = generateIdentity()
    const text = await Effect.gen(function*() {
      const alice = yield* Messenger.make({ serverUrl: node.url, identity: a })
      const bob = yield* Messenger.make({ serverUrl: node.url, identity: b })
      const aliceEvents = yield* alice.subscribe
      const bobEvents = yield* bob.subscribe
      yield* alice.connect
      yield* bob.connect
      expect(yield* alice.onlinePeers).toContain(b.publicKey)
      const sent = yield* alice.send(b.publicKey, "compressed both ways ✓")
      const got = yield* Queue.take(bobEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Received" }))
      const receipt = yield* Queue.take(aliceEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Delivered" }))
      expect(receipt._tag === "Delivered" && receipt.record.messageHash).toBe(sent.messageHash)
      return got._tag === "Received" ? got.record.text : undefined
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(text).toBe("compressed both ways ✓")
  }, T)
})

/** The transport alone: what each setting negotiates, and how many bytes a 20 KB frame costs (kernel counters). */
const served = (compression: WsCompression, binary = false) =>
  Effect.gen(function*() {
    const { url, port } = yield* BunTransport.make.serve({
      name: "l2ps",
      host: "127.0.0.1",
      port: 0,
      maxPayloadBytes: 1 << 20,
      maxConnections: 10,
      idleTimeoutSeconds: 10,
      compression,
      handler: {
        open: (c) => ({
          message: () =>
            void (binary ? c.sendBinary!(new TextEncoder().encode(JSON.stringify({ type: "message", payload: "ab".repeat(10_000) }))) : c.send(`{"type":"message","payload":"${"ab".repeat(10_000)}"}`)),
          drain: () => {},
          closed: () => {}
        })
      }
    })
    return yield* Effect.promise(async () => {
      const sock = await raw(url, true)
      sock.ws.send("{}")
      await waitUntil(() => sock.frames.length === 1, "the frame")
      expect(sock.frames[0].payload).toHaveLength(20_000)
      const ss = Bun.spawnSync(["ss", "-tinH", "state", "established", `( sport = :${port} )`]).stdout.toString()
      return { extensions: sock.ws.extensions, sent: Number(/bytes_sent:(\d+)/.exec(ss)![1]) }
    })
  }).pipe(Effect.scoped, Effect.runPromise)

describe("the transport", () => {
  test("off negotiates nothing even with a client that offers permessage-deflate; 4KB and shared compress what the server sends", async () => {
    const off = await served("off")
    expect(off.extensions).toBe("")
    expect(off.sent).toBeGreaterThan(20_000)
    for (const c of ["4KB", "shared"] as const) {
      const on = await served(c)
      expect(on.extensions).toContain("permessage-deflate")
      // The 101 Switching Protocols response plus a deflated frame of a repeated pair.
      expect(on.sent).toBeLessThan(1_000)
    }
  }, T)

  test("binary frames go out whole even where text frames are deflated (they carry ciphertext, which does not shrink)", async () => {
    const on = await served("shared", true)
    expect(on.extensions).toContain("permessage-deflate")
    expect(on.sent).toBeGreaterThan(20_000)
  }, T)
})
