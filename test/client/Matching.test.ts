/**
 * The SDK's reply matching (PROTOCOL-REFERENCE.md §3.2.3), which the real node always satisfies, so it
 * is checked against a scripted fake server: only `requestId` + an expected type resolves, an error
 * with the id rejects with `payload.message`, everything else goes to the events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { Server, ServerWebSocket } from "bun"
import { ed25519 } from "@noble/curves/ed25519.js"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, signFnOf } from "../../src/client/L2psCrypto.ts"
import type { ErrorPayload, IncomingMessagePayload } from "../../src/client/Wire.ts"

interface Frame {
  readonly type: string
  readonly payload: any
  readonly timestamp: number
  readonly requestId?: string
}

const received: Array<Frame> = []
// Keys are checked by the client's Schemas (src/domain/ServerFrames.ts): 64 hex characters.
const P1 = "1".repeat(64)
const ME = "2".repeat(64)
let server: Server<undefined>

const out = (ws: ServerWebSocket<undefined>, type: string, payload: unknown, requestId?: string) =>
  ws.send(JSON.stringify({ type, payload, timestamp: Date.now(), ...(requestId === undefined ? {} : { requestId }) }))

const script = (ws: ServerWebSocket<undefined>, f: Frame) => {
  switch (f.type) {
    case "register":
      return out(ws, "registered", { success: true, publicKey: f.payload.publicKey, l2psUid: f.payload.l2psUid, onlinePeers: [P1] }, f.requestId)
    case "discover":
      out(ws, "discover_response", { peers: ["wrong"] })
      out(ws, "message_sent", { messageHash: "h" }, f.requestId)
      out(ws, "error", { code: "RATE_LIMITED", message: "not yours" }, "req_other")
      ws.send("not json {")
      out(ws, "message", { from: P1, encrypted: { ciphertext: "c", nonce: "n" }, messageHash: "m1" })
      out(ws, "message", { from: P1, encrypted: { ciphertext: "c", nonce: "n" }, messageHash: "m1" })
      // malformed pushes: reported as errors, never delivered
      out(ws, "message", { from: "p1", encrypted: { ciphertext: "c", nonce: "n" }, messageHash: "m2" })
      out(ws, "message", { from: P1, encrypted: { ciphertext: 7, nonce: "n" }, messageHash: "m3" })
      return out(ws, "discover_response", { peers: [P1, ME] }, f.requestId)
    case "request_public_key":
      if (f.payload.targetId === "malformed") return out(ws, "public_key_response", { targetId: "malformed", publicKey: 42 }, f.requestId)
      return f.payload.targetId === "bare"
        ? out(ws, "error", { code: "INTERNAL_ERROR" }, f.requestId)
        : out(ws, "error", { code: "PEER_NOT_FOUND", message: "no such peer" }, f.requestId)
    case "ack":
      return out(ws, "ack_response", { messageHashes: f.payload.messageHashes }, f.requestId)
    default:
      return // history: never answered
  }
}

beforeAll(() => {
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req, s) => (s.upgrade(req) ? undefined : new Response("upgrade", { status: 426 })),
    websocket: {
      message(ws, text) {
        const f = JSON.parse(String(text)) as Frame
        received.push(f)
        script(ws, f)
      }
    }
  })
})

afterAll(() => server.stop(true))

describe("reply matching, against a scripted server", () => {
  test("requestId + expected type only; errors reject with payload.message; the rest are events", async () => {
    const id = generateIdentity()
    const client = new L2PSMessagingPeer({
      serverUrl: `ws://127.0.0.1:${server.port}`,
      publicKey: id.publicKey,
      l2psUid: "net",
      signFn: signFnOf(id),
      autoAck: true,
      timeouts: { request: 300 }
    })
    const errors: Array<ErrorPayload> = []
    const messages: Array<IncomingMessagePayload> = []
    client.onError((e) => errors.push(e))
    client.onMessage((m) => messages.push(m))
    try {
      expect((await client.connect()).onlinePeers).toEqual([P1])
      expect(client.peers).toEqual([P1])
      const reg = received.find((f) => f.type === "register")!
      expect(reg.requestId).toMatch(/^req_\d+_[0-9a-f]{10}$/)
      expect(reg.payload.capabilities).toEqual(["ack"])
      const signed = new TextEncoder().encode(`register:${id.publicKey}:${reg.timestamp}`)
      expect(ed25519.verify(Buffer.from(reg.payload.proof, "hex"), signed, Buffer.from(id.publicKey, "hex"))).toBe(true)

      expect(await client.discover()).toEqual([P1, ME])
      expect(client.peers).toEqual([P1, ME])
      expect(errors.map((e) => [e.code, e.details])).toEqual([
        ["RATE_LIMITED", undefined],
        ["MALFORMED_FRAME", "message"],
        ["MALFORMED_FRAME", "message"]
      ])
      expect(errors[0]).toEqual({ code: "RATE_LIMITED", message: "not yours" })
      expect(errors[1]!.message).toContain(`actual "p1"`)
      // one message (de-duplicated by messageHash), acknowledged
      expect(messages.map((m) => m.messageHash)).toEqual(["m1"])
      const until = Date.now() + 2000
      while (!received.some((f) => f.type === "ack") && Date.now() < until) await Bun.sleep(10)
      await Bun.sleep(50)
      expect([...new Set(received.filter((f) => f.type === "ack").flatMap((f) => f.payload.messageHashes))]).toEqual(["m1"])

      await expect(client.requestPublicKey("x")).rejects.toThrow("no such peer")
      await expect(client.requestPublicKey("bare")).rejects.toThrow("Server error")
      // a reply that does not decode fails its request at once, with what was wrong
      await expect(client.requestPublicKey("malformed")).rejects.toThrow("Malformed public_key_response")
      await expect(client.history("f".repeat(64), { limit: 5 })).rejects.toThrow("Timeout waiting for history_response (300ms)")
      const h = received.find((f) => f.type === "history")!
      expect(h.payload).toMatchObject({ peerKey: "f".repeat(64), limit: 5 })
      expect("before" in h.payload).toBe(false)
      const signedH = new TextEncoder().encode(`history:${"f".repeat(64)}:${h.timestamp}`)
      expect(ed25519.verify(Buffer.from(h.payload.proof, "hex"), signedH, Buffer.from(id.publicKey, "hex"))).toBe(true)
    } finally {
      await client.dispose()
    }
  })
})
