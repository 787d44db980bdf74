/**
 * Binary frames through a real node (docs/PROTOCOL.md, "Binary frames"): a session that asks for them
 * gets the hot frames in binary and may send `send`/`ack` in binary; a JSON client (the SDK's
 * `L2PSMessagingPeer`, here its double) exchanging messages and receipts with it sees nothing new.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { decodeBinary, encodeBinary, type JsonFrame } from "../../src/domain/BinaryFrames.ts"
import { generateIdentity, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as L2psPeer from "../../src/client/L2psPeer.ts"
import { makeIdentity } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { newRequestId, PeerPool, registerFrame, startE2eNode, waitUntil } from "./helpers.ts"

let node: NodeProcess
const pool = new PeerPool()
const sockets: Array<WebSocket> = []
beforeAll(async () => {
  node = await startE2eNode()
})
afterAll(async () => {
  pool.disconnectAll()
  for (const ws of sockets) ws.close()
  await node?.dispose()
})

/** A raw socket keeping every frame as it came: text, or the bytes of a binary frame. */
const rawSocket = async (url: string) => {
  const ws = new WebSocket(url)
  ws.binaryType = "arraybuffer"
  sockets.push(ws)
  const frames: Array<string | Uint8Array> = []
  ws.onmessage = (e) => frames.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer))
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error("cannot connect"))
  })
  let read = 0
  /** The next frame that is not presence, as its JSON frame, and whether it came binary. */
  const next = async (): Promise<{ binary: boolean; frame: Record<string, any> }> => {
    for (;;) {
      await waitUntil(() => frames.length > read, "a frame", 10_000)
      const f = frames[read++]!
      const parsed = typeof f === "string" ? JSON.parse(f) : (() => {
        const d = decodeBinary(f)
        if (d._tag === "Bad") throw new Error(d.message)
        return d.frame
      })()
      if (parsed.type === "peer_joined" || parsed.type === "peer_left") continue
      return { binary: typeof f !== "string", frame: parsed }
    }
  }
  return { ws, frames, next, sendBinary: (f: JsonFrame) => ws.send(encodeBinary(f)!) }
}

const ciphertext = Buffer.from(Array.from({ length: 188 }, (_, i) => i)).toString("base64")
const hash = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")

describe("binary frames through a real node", () => {
  test("a binary session and a JSON (SDK) session exchange messages and receipts; only the binary one sees binary", async () => {
    const l2psUid = "default"
    const sdk = await pool.connect(node.url, l2psUid, { capabilities: ["ack"] })
    // The SDK's registration is answered as the reference answers it.
    expect(sdk.registered).not.toHaveProperty("capabilities")

    const bob = makeIdentity()
    const b = await rawSocket(node.url)
    b.ws.send(JSON.stringify(registerFrame(bob, l2psUid, { capabilities: ["ack", "binary", "quiet_acks"], requestId: "r1" })))
    const registered = await b.next()
    expect(registered.binary).toBe(false)
    expect(registered.frame.payload.capabilities).toEqual(["ack", "binary", "quiet_acks"])

    // JSON → binary: the SDK's message reaches bob in binary, exactly as sent.
    const h1 = hash()
    const sent = await sdk.client.send(bob.publicKey, { ciphertext, nonce: "bm9uY2Vub25jZTEy" }, h1)
    expect(sent).toMatchObject({ messageHash: h1, l2psStatus: "submitted" })
    const m = await b.next()
    expect(m.binary).toBe(true)
    expect(m.frame.type).toBe("message")
    expect(m.frame.payload).toEqual({ from: sdk.key, encrypted: { ciphertext, nonce: "bm9uY2Vub25jZTEy" }, messageHash: h1, offline: false })
    expect(typeof m.frame.timestamp).toBe("number")

    // Bob's binary ack: the SDK gets its receipt; bob gets no ack_response (quiet acks), so the next
    // frame he gets is the reply to his next request.
    b.sendBinary({ type: "ack", payload: { messageHashes: [h1] }, timestamp: Date.now(), requestId: newRequestId() })
    await waitUntil(() => sdk.receipts.some((r) => r.messageHash === h1), "the SDK's receipt", 10_000)

    // Binary → JSON: bob's binary send reaches the SDK as the JSON it would get from any sender.
    const h2 = hash()
    const rid = newRequestId()
    b.sendBinary({ type: "send", payload: { to: sdk.key, encrypted: { ciphertext, nonce: "secure" }, messageHash: h2 }, timestamp: Date.now(), requestId: rid })
    const reply = await b.next()
    expect(reply).toEqual({ binary: true, frame: { type: "message_sent", payload: { messageHash: h2, l2psStatus: "submitted" }, timestamp: reply.frame.timestamp, requestId: rid } })
    const inbox = await sdk.waitInbox(1, 10_000)
    expect(inbox[0]).toEqual({ from: bob.publicKey, encrypted: { ciphertext, nonce: "secure" }, messageHash: h2, offline: false })
    // The SDK acknowledges (JSON); bob's receipt comes in binary.
    await sdk.client.ack([h2])
    const receipt = await b.next()
    expect(receipt.binary).toBe(true)
    expect(receipt.frame).toMatchObject({ type: "message_delivered", payload: { messageHash: h2 } })

    // Everything the SDK's session got was JSON text, and none of it an ack_response to bob.
    expect(sdk.client.rawFrames.length).toBeGreaterThan(0)
    expect(sdk.client.rawFrames.every((f) => f.parsed !== undefined && f.raw.startsWith("{"))).toBe(true)
    const typeOf = (f: string | Uint8Array) => typeof f === "string" ? JSON.parse(f).type : (decodeBinary(f) as { frame: JsonFrame }).frame.type
    expect(b.frames.map(typeOf)).not.toContain("ack_response")
  }, 30_000)

  test("sealed receipts ride binary: on the recipient's ack and in the sender's message_delivered; a refused one is a quiet ack's error", async () => {
    const l2psUid = "default"
    const caps = ["ack", "binary", "quiet_acks", "receipts"]
    const alice = makeIdentity()
    const bob = makeIdentity()
    const a = await rawSocket(node.url)
    a.ws.send(JSON.stringify(registerFrame(alice, l2psUid, { capabilities: caps, requestId: "a1" })))
    expect((await a.next()).frame.payload.capabilities).toEqual(caps)
    const b = await rawSocket(node.url)
    b.ws.send(JSON.stringify(registerFrame(bob, l2psUid, { capabilities: caps, requestId: "b1" })))
    expect((await b.next()).frame.payload.capabilities).toEqual(caps)

    const h = hash()
    a.sendBinary({ type: "send", payload: { to: bob.publicKey, encrypted: { ciphertext, nonce: "secure" }, messageHash: h }, timestamp: Date.now(), requestId: 1 })
    expect((await a.next()).frame).toMatchObject({ type: "message_sent" })
    expect((await b.next()).frame.payload.messageHash).toBe(h)
    const receipt = Buffer.from(new Uint8Array(114).fill(9)).toString("base64")
    b.sendBinary({ type: "ack", payload: { messageHashes: [h], receipts: { [h]: receipt } }, timestamp: Date.now(), requestId: 2 })
    const delivered = await a.next()
    expect(delivered.binary).toBe(true)
    expect(delivered.frame).toMatchObject({ type: "message_delivered", payload: { messageHash: h, receipt } })
    // Its bytes on the wire: the receipt's 114, not its 152 characters of base64.
    expect((a.frames.at(-1) as Uint8Array).length).toBeLessThan(114 + 32 + 24)

    const h2 = hash()
    a.sendBinary({ type: "send", payload: { to: bob.publicKey, encrypted: { ciphertext, nonce: "secure" }, messageHash: h2 }, timestamp: Date.now(), requestId: 3 })
    expect((await a.next()).frame).toMatchObject({ type: "message_sent" })
    expect((await b.next()).frame.payload.messageHash).toBe(h2)
    b.sendBinary({ type: "ack", payload: { messageHashes: [h2], receipts: { [h2]: "A".repeat(516) } }, timestamp: Date.now(), requestId: 4 })
    const refused = await b.next()
    expect(refused.frame).toMatchObject({ type: "error", payload: { code: "INVALID_MESSAGE" }, requestId: 4 })
    expect(refused.frame.payload.message).toContain(`${h2}: a receipt must be at most 512 characters (this one has 516)`)
    // The ack counted: alice has her confirmation, without the receipt.
    const plain = await a.next()
    expect(plain.frame).toMatchObject({ type: "message_delivered", payload: { messageHash: h2 } })
    expect(plain.frame.payload).not.toHaveProperty("receipt")
  }, 30_000)

  test("bad binary frames get clear errors, with the request id when it was readable, and the session goes on", async () => {
    const l2psUid = "default"
    const sdk = await pool.connect(node.url, l2psUid, { capabilities: ["ack"] })
    const bob = makeIdentity()
    const b = await rawSocket(node.url)
    b.ws.send(JSON.stringify(registerFrame(bob, l2psUid, { capabilities: ["binary"] })))
    expect((await b.next()).frame.type).toBe("registered")

    const good = encodeBinary({ type: "send", payload: { to: sdk.key, encrypted: { ciphertext, nonce: "secure" }, messageHash: hash() }, requestId: 42 })!
    const errors: Array<[Uint8Array, string, unknown]> = [
      [good.subarray(0, good.length - 3), "Invalid binary frame: truncated", 42],
      [new Uint8Array([...good, 0]), "Invalid binary frame: 1 bytes after the frame", 42],
      [new Uint8Array([0xbe, 0]), "Invalid binary frame: unknown tag 0xbe", undefined],
      [new Uint8Array([0x81, 0x01, 0x05, 0xf5, 0x03]), "Invalid binary frame: messageHashes: more than 500 strings", 5]
    ]
    for (const [bytes, message, requestId] of errors) {
      b.ws.send(bytes)
      const e = await b.next()
      expect(e.binary).toBe(false)
      expect(e.frame.type).toBe("error")
      expect(e.frame.payload).toEqual({ code: "INVALID_MESSAGE", message })
      expect(e.frame.requestId).toBe(requestId)
    }
    // A binary frame that decodes but breaks the send's rules gets the same error as its JSON would.
    b.sendBinary({ type: "send", payload: { to: "zz", encrypted: { ciphertext, nonce: "secure" }, messageHash: hash() }, requestId: 7 })
    expect((await b.next()).frame).toMatchObject({ type: "error", payload: { code: "INVALID_MESSAGE", message: "Invalid recipient key (expected 64 hex characters)" }, requestId: 7 })

    // Still registered and served: the good frame goes through, and its ack_response comes (not asked quiet).
    b.ws.send(good)
    expect((await b.next()).frame).toMatchObject({ type: "message_sent", requestId: 42 })
    await sdk.waitInbox(1, 10_000)
  }, 30_000)

  test("our client asks for binary frames and quiet acks, and talks with an SDK client both ways", async () => {
    const l2psUid = "default"
    const sdk = await pool.connect(node.url, l2psUid, { capabilities: ["ack"] })
    const me = generateIdentity()
    const scope = Effect.runSync(Scope.make())
    const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(effect.pipe(Scope.extend(scope)))
    try {
      const received: Array<string> = []
      const receipts: Array<string> = []
      const peer = await run(L2psPeer.make({
        serverUrl: node.url,
        publicKey: me.publicKey,
        l2psUid,
        signFn: signFnOf(me),
        autoAck: true,
        binaryFrames: true,
        quietAcks: true,
        onEvent: (e) => {
          if (e._tag === "Message") received.push(e.message.messageHash)
          if (e._tag === "Delivered") receipts.push(e.receipt.messageHash)
        }
      }))
      const registered = await run(peer.connect)
      expect(registered.capabilities).toEqual(["ack", "binary", "quiet_acks"])

      const out = hash()
      const result = await run(peer.send(sdk.key, { ciphertext, nonce: "secure" }, out))
      expect(result).toEqual({ messageHash: out, l2psStatus: "submitted" })
      await sdk.waitInbox(1, 10_000)
      await sdk.client.ack([out])
      await waitUntil(() => receipts.includes(out), "our client's receipt", 10_000)

      const back = hash()
      await sdk.client.send(me.publicKey, { ciphertext, nonce: "secure" }, back)
      await waitUntil(() => received.includes(back), "the SDK's message", 10_000)
      // Our client's (binary, unanswered) ack reached the node: the SDK has its receipt.
      await waitUntil(() => sdk.receipts.some((r) => r.messageHash === back), "the SDK's receipt", 10_000)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 30_000)

  test("the legacy server is unaffected: a binary frame there is what it always was, a frame that is not UTF-8 JSON", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${node.env["SIGNALING_PORT"]}`)
    sockets.push(ws)
    const frames: Array<string> = []
    ws.onmessage = (e) => frames.push(String(e.data))
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve()
      ws.onerror = () => reject(new Error("cannot connect"))
    })
    ws.send(encodeBinary({ type: "ack", payload: { messageHashes: ["ab"] } })!)
    await waitUntil(() => frames.length > 0, "the legacy server's answer", 10_000)
    const answer = JSON.parse(frames[0]!)
    expect(answer.type).toBe("error")
    expect(typeof answer.payload.details).toBe("string")
  }, 30_000)
})
