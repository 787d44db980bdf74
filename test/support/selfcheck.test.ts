/**
 * Self-check of the test tools: the L2PS client double behaves as PROTOCOL-REFERENCE.md §3.2 says,
 * checked against a tiny fake server (Bun.serve) started here; RawSocket and NodeProcess work.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ServerWebSocket } from "bun"
import {
  encryptedFor,
  L2psClient,
  makeIdentity,
  randomHash,
  verifyProof,
  type ConnectionState,
  type Identity,
  type IncomingMessagePayload,
  type L2psClientConfig,
} from "./L2psClient.ts"
import * as RawSocket from "./RawSocket.ts"
import { bunBinary, startNode } from "./NodeProcess.ts"

// ─── Fake server ────────────────────────────────────────────────────────────

interface ConnData {
  id: number
  publicKey: string | null
}

interface Frame {
  type: string
  payload: any
  timestamp: number
  requestId?: string
}

interface Received {
  conn: number
  frame: Frame
  at: number
}

type Override = (ws: ServerWebSocket<ConnData>, frame: Frame) => boolean

const UID = "testnet_l2ps"

const startFake = () => {
  let nextId = 0
  const received: Received[] = []
  const sockets = new Map<number, ServerWebSocket<ConnData>>()
  const closedAt = new Map<number, number>()
  const registered = new Map<string, ServerWebSocket<ConnData>>()
  let override: Override | null = null
  const waiters: Array<() => void> = []

  const frameOut = (ws: ServerWebSocket<ConnData>, type: string, payload: unknown, requestId?: string): void => {
    ws.send(JSON.stringify(requestId === undefined ? { type, payload, timestamp: Date.now() } : { type, payload, timestamp: Date.now(), requestId }))
  }
  const reply = (ws: ServerWebSocket<ConnData>, req: Frame, type: string, payload: unknown): void =>
    frameOut(ws, type, payload, req.requestId)
  const error = (ws: ServerWebSocket<ConnData>, req: Frame, code: string, message: string): void =>
    reply(ws, req, "error", { code, message })

  const handle = (ws: ServerWebSocket<ConnData>, frame: Frame): void => {
    if (override && override(ws, frame)) return
    const me = ws.data.publicKey
    switch (frame.type) {
      case "register": {
        const { publicKey, l2psUid, proof } = frame.payload
        if (!verifyProof(publicKey, `register:${publicKey}:${frame.timestamp}`, proof)) {
          return error(ws, frame, "INVALID_PROOF", "Signature verification failed")
        }
        const old = registered.get(publicKey)
        ws.data.publicKey = publicKey
        registered.set(publicKey, ws)
        if (old && old !== ws) old.close()
        const others = [...registered.keys()].filter((k) => k !== publicKey)
        reply(ws, frame, "registered", { success: true, publicKey, l2psUid, onlinePeers: others })
        for (const k of others) frameOut(registered.get(k)!, "peer_joined", { publicKey })
        return
      }
      case "discover":
        return reply(ws, frame, "discover_response", { peers: [...registered.keys()] })
      case "request_public_key": {
        const t = frame.payload.targetId
        return reply(ws, frame, "public_key_response", { targetId: t, publicKey: registered.has(t) ? t : null })
      }
      case "send": {
        const { to, encrypted, messageHash } = frame.payload
        const target = registered.get(to)
        if (!target) return reply(ws, frame, "message_queued", { messageHash, status: "queued" })
        frameOut(target, "message", { from: me, encrypted, messageHash, offline: false })
        return reply(ws, frame, "message_sent", { messageHash, l2psStatus: "submitted" })
      }
      case "history": {
        const { peerKey, proof } = frame.payload
        if (!me || !verifyProof(me, `history:${peerKey}:${frame.timestamp}`, proof)) {
          return error(ws, frame, "INVALID_PROOF", "History proof failed")
        }
        return reply(ws, frame, "history_response", { messages: [], hasMore: false })
      }
      case "ack":
        return reply(ws, frame, "ack_response", { acked: frame.payload.messageHashes.length })
      case "proof_request":
        return reply(ws, frame, "proof_response", {
          messageHash: frame.payload.messageHash,
          leaf: "00",
          batch: { id: "b1", l2psUid: UID, root: "00", size: 1, prevBatchHash: null, l2psTxHash: null, status: "batched" },
          path: [],
        })
      default:
        return error(ws, frame, "INVALID_MESSAGE", `Unknown type: ${frame.type}`)
    }
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      if (srv.upgrade(req, { data: { id: ++nextId, publicKey: null } })) return undefined
      return new Response("WebSocket upgrade required", { status: 426 })
    },
    websocket: {
      data: {} as ConnData,
      open(ws) {
        sockets.set(ws.data.id, ws)
      },
      message(ws, raw) {
        let frame: Frame
        try {
          frame = JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8")) as Frame
        } catch {
          ws.send(JSON.stringify({ type: "error", payload: { code: "INVALID_MESSAGE", message: "Invalid JSON" }, timestamp: Date.now() }))
          return
        }
        received.push({ conn: ws.data.id, frame, at: Date.now() })
        waiters.splice(0).forEach((w) => w())
        handle(ws, frame)
      },
      close(ws) {
        closedAt.set(ws.data.id, Date.now())
        sockets.delete(ws.data.id)
        const k = ws.data.publicKey
        if (k && registered.get(k) === ws) {
          registered.delete(k)
          for (const other of registered.values()) frameOut(other, "peer_left", { publicKey: k })
        }
      },
    },
  })

  /** wait until a received frame satisfies `pred` */
  const waitFrame = (pred: (r: Received) => boolean, timeoutMs = 5000): Promise<Received> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("fake server: frame not received in time")), timeoutMs)
      const check = (): void => {
        const found = received.find(pred)
        if (found) {
          clearTimeout(t)
          resolve(found)
        } else waiters.push(check)
      }
      check()
    })

  return {
    url: `ws://127.0.0.1:${server.port}`,
    received,
    sockets,
    closedAt,
    frameOut,
    reply,
    waitFrame,
    setOverride(o: Override | null) {
      override = o
    },
    ofType: (type: string) => received.filter((r) => r.frame.type === type),
    stop: () => server.stop(true),
  }
}

// ─── Helpers ────────────────────────────────────────────────────────────────

const fake = startFake()
const clients: L2psClient[] = []
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect()
  fake.setOverride(null)
})
afterAll(() => fake.stop())

const newClient = (
  id: Identity = makeIdentity(),
  extra: Partial<L2psClientConfig> = {},
): { client: L2psClient; id: Identity; states: ConnectionState[] } => {
  const client = new L2psClient({ serverUrl: fake.url, publicKey: id.publicKey, l2psUid: UID, signFn: id.signFn, ...extra })
  const states: ConnectionState[] = []
  client.onConnectionStateChange((s) => states.push(s))
  clients.push(client)
  return { client, id, states }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const until = async (cond: () => boolean, timeoutMs = 5000): Promise<void> => {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time")
    await sleep(10)
  }
}

const REQUEST_ID = /^req_\d{13}_[0-9a-f]{10}$/

// ─── Client ─────────────────────────────────────────────────────────────────

describe("L2psClient against a fake server", () => {
  test("connect registers with requestId and a proof over the frame timestamp", async () => {
    const { client, id, states } = newClient()
    expect(client.isConnected).toBe(false)
    const reg = await client.connect()
    expect(reg.success).toBe(true)
    expect(reg.publicKey).toBe(id.publicKey)
    expect(client.isConnected).toBe(true)
    expect(client.isRegistered).toBe(true)
    expect(states).toEqual(["reconnecting", "connected"])

    const r = fake.ofType("register").find((x) => x.frame.payload.publicKey === id.publicKey)!
    expect(Object.keys(r.frame).sort()).toEqual(["payload", "requestId", "timestamp", "type"])
    expect(r.frame.requestId).toMatch(REQUEST_ID)
    expect(Object.keys(r.frame.payload).sort()).toEqual(["l2psUid", "proof", "publicKey"])
    expect(r.frame.payload.l2psUid).toBe(UID)
    expect(r.frame.payload.proof).toMatch(/^[0-9a-f]{128}$/)
    expect(verifyProof(id.publicKey, `register:${id.publicKey}:${r.frame.timestamp}`, r.frame.payload.proof)).toBe(true)
    expect(client.sentFrames[0]?.frame.requestId).toBe(r.frame.requestId)
  })

  test("not registered: every call rejects", async () => {
    const { client } = newClient()
    const msg = "Not registered. Call connect() first."
    await expect(client.send("ab", encryptedFor("x"), randomHash())).rejects.toThrow(msg)
    await expect(client.history("ab")).rejects.toThrow(msg)
    await expect(client.discover()).rejects.toThrow(msg)
    await expect(client.requestPublicKey("ab")).rejects.toThrow(msg)
    await expect(client.ack(["h"])).rejects.toThrow(msg)
    await expect(client.proofRequest("h")).rejects.toThrow(msg)
  })

  test("peers, discover, requestPublicKey, send, history, presence", async () => {
    const a = newClient()
    const b = newClient()
    const joined: string[] = []
    const left: string[] = []
    a.client.onPeerJoined((k) => joined.push(k))
    a.client.onPeerLeft((k) => left.push(k))
    const inbox: IncomingMessagePayload[] = []
    b.client.onMessage((m) => inbox.push(m))

    await a.client.connect()
    const regB = await b.client.connect()
    expect(regB.onlinePeers).toEqual([a.id.publicKey])
    expect(b.client.peers).toEqual([a.id.publicKey]) // seeded from onlinePeers, self excluded
    await until(() => joined.length === 1)
    expect(joined).toEqual([b.id.publicKey])
    expect(a.client.peers).toEqual([b.id.publicKey])

    const peers = await b.client.discover()
    expect(peers.sort()).toEqual([a.id.publicKey, b.id.publicKey].sort())
    expect(b.client.peers.sort()).toEqual(peers.sort()) // replaced, self included

    expect(await a.client.requestPublicKey(b.id.publicKey)).toBe(b.id.publicKey)
    expect(await a.client.requestPublicKey("00".repeat(32))).toBeNull()

    const enc = encryptedFor("hello")
    expect(Buffer.from(enc.nonce, "base64").length).toBe(12)
    expect(Buffer.from(enc.ciphertext, "base64").length).toBe(5 + 16)
    const hash = randomHash()
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    const sent = await a.client.send(b.id.publicKey, enc, hash)
    expect(sent).toEqual({ messageHash: hash, l2psStatus: "submitted" })
    await until(() => inbox.length === 1)
    expect(inbox[0]).toEqual({ from: a.id.publicKey, encrypted: enc, messageHash: hash, offline: false })

    const queued = await a.client.send("11".repeat(32), enc, randomHash())
    expect(queued).toMatchObject({ status: "queued" })

    expect(await a.client.history(b.id.publicKey)).toEqual({ messages: [], hasMore: false })
    const h1 = fake.ofType("history").at(-1)!.frame
    expect(Object.keys(h1.payload).sort()).toEqual(["peerKey", "proof"]) // undefined before/limit dropped
    expect(verifyProof(a.id.publicKey, `history:${b.id.publicKey}:${h1.timestamp}`, h1.payload.proof)).toBe(true)
    await a.client.history(b.id.publicKey, { before: 123, limit: 5 })
    const h2 = fake.ofType("history").at(-1)!.frame
    expect(h2.payload).toMatchObject({ peerKey: b.id.publicKey, before: 123, limit: 5 })

    b.client.disconnect()
    await until(() => left.length === 1)
    expect(left).toEqual([b.id.publicKey])
    expect(a.client.peers).toEqual([])
  })

  test("error frames: matching requestId rejects with payload.message or 'Server error'; others go to onError", async () => {
    const { client } = newClient()
    const errors: unknown[] = []
    client.onError((e) => errors.push(e))
    await client.connect()

    fake.setOverride((ws, f) => {
      if (f.type === "discover") {
        fake.reply(ws, f, "error", { code: "INTERNAL_ERROR", message: "nope" })
        return true
      }
      if (f.type === "history") {
        fake.reply(ws, f, "error", { code: "INTERNAL_ERROR" })
        return true
      }
      if (f.type === "request_public_key") {
        // an error without requestId, then an error with another requestId, then the reply
        fake.frameOut(ws, "error", { code: "RATE_LIMITED", message: "unsolicited" })
        fake.frameOut(ws, "error", { code: "RATE_LIMITED", message: "other" }, "req_1_0000000000")
        fake.reply(ws, f, "public_key_response", { targetId: f.payload.targetId, publicKey: "pk" })
        return true
      }
      return false
    })
    await expect(client.discover()).rejects.toThrow("nope")
    await expect(client.history("ab")).rejects.toThrow("Server error")
    expect(await client.requestPublicKey("t")).toBe("pk")
    expect(errors).toEqual([
      { code: "RATE_LIMITED", message: "unsolicited" },
      { code: "RATE_LIMITED", message: "other" },
    ])
  })

  test("only requestId + expected type resolve; other frames fall through to dispatch", async () => {
    const a = newClient()
    const inbox: IncomingMessagePayload[] = []
    a.client.onMessage((m) => inbox.push(m))
    await a.client.connect()
    const hash = randomHash()
    fake.setOverride((ws, f) => {
      if (f.type !== "send") return false
      // no requestId: silently dropped by the client
      fake.frameOut(ws, "message_sent", { messageHash: "no-request-id", l2psStatus: "submitted" })
      // right requestId, wrong type: not consumed, dispatched as a message
      fake.reply(ws, f, "message", { from: "x", encrypted: f.payload.encrypted, messageHash: "fallthrough" })
      // right type, other requestId: not consumed
      fake.frameOut(ws, "message_sent", { messageHash: "other-id", l2psStatus: "submitted" }, "req_1_0000000000")
      // the real reply
      fake.reply(ws, f, "message_queued", { messageHash: f.payload.messageHash, status: "queued" })
      return true
    })
    const res = await a.client.send("22".repeat(32), encryptedFor("x"), hash)
    expect(res).toEqual({ messageHash: hash, status: "queued" })
    expect(inbox.map((m) => m.messageHash)).toEqual(["fallthrough"])
    // every raw frame is recorded
    const types = a.client.rawFrames.map((r) => (r.parsed as { type: string }).type)
    expect(types).toEqual(["registered", "message_sent", "message", "message_sent", "message_queued"])
    expect(a.client.pendingRequestIds).toEqual([])
  })

  test("extensions: capabilities, ack, proofRequest, onReceipt, raw frame hook", async () => {
    const { client, id } = newClient(makeIdentity(), { capabilities: ["ack"] })
    const raws: string[] = []
    client.onRawFrame((f) => raws.push(f.raw))
    const receipts: unknown[] = []
    client.onReceipt((r) => receipts.push(r))
    await client.connect()
    const reg = fake.ofType("register").at(-1)!.frame
    expect(reg.payload.capabilities).toEqual(["ack"])

    expect(await client.ack(["h1", "h2"])).toEqual({ acked: 2 })
    const ack = fake.ofType("ack").at(-1)!.frame
    expect(ack.payload).toEqual({ messageHashes: ["h1", "h2"] })
    expect(ack.requestId).toMatch(REQUEST_ID)

    const proof = await client.proofRequest("h1")
    expect(proof.messageHash).toBe("h1")
    expect(fake.ofType("proof_request").at(-1)!.frame.payload).toEqual({ messageHash: "h1" })

    const ws = [...fake.sockets.values()].find((s) => s.data.publicKey === id.publicKey)!
    fake.frameOut(ws, "message_delivered", { messageHash: "h1", at: 42 })
    await until(() => receipts.length === 1)
    expect(receipts).toEqual([{ messageHash: "h1", at: 42 }])
    expect(raws.length).toBe(4)
    expect(client.rawFrames.length).toBe(4)
  })

  test("reconnect: backoff 1000 ms, fresh register proof, queued frames flushed, pending not rejected", async () => {
    let slowHistory = false
    const id = makeIdentity()
    const signFn = async (m: string): Promise<string> => {
      if (slowHistory && m.startsWith("history:")) await sleep(300)
      return id.signFn(m)
    }
    const { client, states } = newClient(id, { signFn })
    const errors: unknown[] = []
    client.onError((e) => errors.push(e))
    await client.connect()
    const firstConn = fake.received.find((r) => r.frame.type === "register" && r.frame.payload.publicKey === id.publicKey)!
    const firstReg = firstConn.frame

    // a discover the server leaves unanswered for now
    let heldDiscover: Frame | null = null
    fake.setOverride((_ws, f) => {
      if (f.type === "discover" && heldDiscover === null) {
        heldDiscover = f
        return true
      }
      return false
    })
    const discovering = client.discover()
    await until(() => heldDiscover !== null)

    // a history whose frame is created while the socket is down (slow signFn)
    slowHistory = true
    const historying = client.history("33".repeat(32))

    let disconnectedAt = 0
    client.onConnectionStateChange((s) => {
      if (s === "disconnected" && disconnectedAt === 0) disconnectedAt = Date.now()
    })
    fake.sockets.get(firstConn.conn)!.close(1001, "drop")
    await until(() => disconnectedAt > 0)
    expect(client.isConnected).toBe(false)
    expect(client.isRegistered).toBe(false)
    expect(client.peers).toEqual([])

    await until(() => client.queuedFrames.length === 1)
    expect(client.queuedFrames[0]?.type).toBe("history")
    expect(client.pendingRequestIds).toContain(heldDiscover!.requestId!)

    const second = await fake.waitFrame(
      (r) => r.conn !== firstConn.conn && r.frame.type === "register" && r.frame.payload.publicKey === id.publicKey,
    )
    const delay = second.at - disconnectedAt
    expect(delay).toBeGreaterThanOrEqual(990)
    expect(delay).toBeLessThan(1800)
    const reg2 = second.frame
    expect(reg2.timestamp).toBeGreaterThan(firstReg.timestamp)
    expect(reg2.requestId).not.toBe(firstReg.requestId)
    expect(reg2.payload.proof).not.toBe(firstReg.payload.proof)
    expect(verifyProof(id.publicKey, `register:${id.publicKey}:${reg2.timestamp}`, reg2.payload.proof)).toBe(true)

    // the queued history is flushed after the re-registration, on the new socket
    const hist = await fake.waitFrame((r) => r.conn === second.conn && r.frame.type === "history")
    const order = fake.received.filter((r) => r.conn === second.conn).map((r) => r.frame.type)
    expect(order.slice(0, 2)).toEqual(["register", "history"])
    expect(await historying).toEqual({ messages: [], hasMore: false })
    expect(hist.frame.timestamp).toBeLessThan(reg2.timestamp)

    await until(() => client.isRegistered)
    expect(states).toEqual(["reconnecting", "connected", "disconnected", "reconnecting", "connected"])
    expect(client.socketsOpened).toBe(2)
    expect(errors).toEqual([])

    // the pending discover survived the drop: answering it on the new socket resolves it
    const ws2 = fake.sockets.get(second.conn)!
    fake.reply(ws2, heldDiscover!, "discover_response", { peers: ["p1"] })
    expect(await discovering).toEqual(["p1"])

    // disconnect(): rejects what is pending, no reconnect afterwards
    fake.setOverride((_ws, f) => f.type === "discover")
    const hanging = client.discover()
    await until(() => client.pendingRequestIds.length === 1)
    client.disconnect()
    await expect(hanging).rejects.toThrow("Disconnected")
    await sleep(1200)
    expect(client.socketsOpened).toBe(2)
    expect(client.isConnected).toBe(false)
  }, 15000)
})

// ─── RawSocket ──────────────────────────────────────────────────────────────

describe("RawSocket", () => {
  test("send, next, nextOfType, expectNothing, close", async () => {
    const id = makeIdentity()
    const s = await RawSocket.open(fake.url)
    s.sendText("not json")
    const err = await s.next(2000)
    expect(err.type).toBe("error")
    expect(err.payload.message).toBe("Invalid JSON")

    const ts = Date.now()
    s.sendJson({
      type: "register",
      payload: { publicKey: id.publicKey, l2psUid: UID, proof: id.signFn(`register:${id.publicKey}:${ts}`) },
      timestamp: ts,
      requestId: "r1",
    })
    s.sendBinary(new TextEncoder().encode(JSON.stringify({ type: "discover", payload: {}, timestamp: ts, requestId: "r2" })))
    const disc = await s.nextOfType("discover_response", 2000)
    expect(disc.requestId).toBe("r2")
    const reg = await s.next(2000) // left in the buffer by nextOfType
    expect(reg.type).toBe("registered")
    expect(reg.requestId).toBe("r1")
    await s.expectNothing(100)
    await expect(s.next(100)).rejects.toThrow("timeout")
    expect(s.received.length).toBe(3)

    const closed = await s.close()
    expect(closed.code).toBe(1000)
    expect(s.isClosed).toBe(true)
  })

  test("closed resolves with the server's code and reason", async () => {
    const s = await RawSocket.open(fake.url)
    fake.setOverride((_ws, f) => f.requestId === "mark") // swallowed: no reply
    s.sendJson({ type: "discover", payload: {}, timestamp: Date.now(), requestId: "mark" })
    const mark = await fake.waitFrame((r) => r.frame.requestId === "mark")
    fake.sockets.get(mark.conn)!.close(4001, "bye")
    expect(await s.closed).toEqual({ code: 4001, reason: "bye" })
    await expect(s.next(100)).rejects.toThrow("closed (4001 bye)")
  })
})

// ─── NodeProcess (with a stand-in script, not the node) ─────────────────────

describe("NodeProcess", () => {
  test("start, ready line, output, stop, restart with same env and data dir", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "np-selfcheck-"))
    const script = path.join(dir, "fake-node.ts")
    fs.writeFileSync(
      script,
      [
        `const port = Number(process.env.L2PS_MESSAGING_PORT)`,
        `const server = Bun.serve({ hostname: "0.0.0.0", port, fetch: () => new Response("ok") })`,
        `console.error("booting, data in " + process.env.DATA_DIR)`,
        `console.log("node listening: l2ps ws://0.0.0.0:" + server.port + " legacy ws://0.0.0.0:" + process.env.LEGACY_PORT)`,
        `process.on("SIGTERM", () => { console.log("bye"); server.stop(true); process.exit(0) })`,
        `setInterval(() => {}, 1000)`,
      ].join("\n"),
    )
    const node = await startNode({ cmd: [bunBinary(), "run", script], env: { EXTRA: "1" }, freePortEnv: ["LEGACY_PORT"] })
    try {
      expect(node.port).toBe(Number(node.env["L2PS_MESSAGING_PORT"]))
      expect(node.url).toBe(`ws://127.0.0.1:${node.port}`)
      expect(node.env["EXTRA"]).toBe("1")
      expect(node.env["LEGACY_PORT"]).toMatch(/^\d+$/)
      expect(fs.existsSync(node.dataDir)).toBe(true)
      expect(node.output()).toContain(`[stderr] booting, data in ${node.dataDir}`)
      const res = await fetch(`http://127.0.0.1:${node.port}/`)
      expect(await res.text()).toBe("ok")

      const again = await node.restart()
      expect(await node.exited).toBe(0)
      expect(node.output()).toContain("bye")
      expect(again.pid).not.toBe(node.pid)
      expect(again.port).toBe(node.port)
      expect(again.dataDir).toBe(node.dataDir)
      expect(await again.kill()).not.toBe(0)
      expect(again.signalCode()).toBe("SIGKILL")
      await again.dispose()
      expect(fs.existsSync(node.dataDir)).toBe(false)
    } finally {
      await node.dispose()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test("a process that exits before the ready line fails with its output", async () => {
    await expect(
      startNode({ cmd: [bunBinary(), "-e", "console.log('config error: boom'); process.exit(3)"] }),
    ).rejects.toThrow(/exited with code 3[\s\S]*config error: boom/)
  })
})
