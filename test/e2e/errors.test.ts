/**
 * End to end: every error of the L2PS server over raw WebSocket frames, against the node started as a
 * user starts it. Each error is `{type:"error", payload:{code, message}, timestamp, requestId?}` with
 * the request's requestId echoed (none when the request had none), and the socket keeps working.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import {
  ask,
  encrypted,
  expectAlive,
  expectError,
  expectRequestError,
  freshTimestamp,
  historyFrame,
  makeIdentity,
  newRequestId,
  nextReply,
  registerFrame,
  registerRaw,
  requestFrame,
  sleep,
  startE2eNode,
} from "./helpers.ts"

const UID = "default"
const INVALID = "INVALID_MESSAGE"

/** Opens raw sockets for one test and closes them after it. */
const sockets = () => {
  const open: RawSocket.RawSocket[] = []
  return {
    async open(url: string): Promise<RawSocket.RawSocket> {
      const s = await RawSocket.open(url)
      open.push(s)
      return s
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
    },
  }
}

const sendFrame = (to: string, messageHash: string = randomHash(), enc: unknown = encrypted()) =>
  requestFrame("send", { to, encrypted: enc, messageHash })

describe("L2PS errors (default limits)", () => {
  let node: NodeProcess
  const socks = sockets()

  beforeAll(async () => {
    node = await startE2eNode({ L2PS_BATCH_INTERVAL_MS: "600000" })
  }, 30000)
  afterEach(() => socks.closeAll())
  afterAll(async () => {
    await socks.closeAll()
    await node?.dispose()
  })

  test("frame level: malformed JSON, bad envelope, unknown type", async () => {
    const s = await socks.open(node.url)
    s.sendText("{not json")
    expectError(await nextReply(s), INVALID, "Invalid JSON", undefined)
    await expectAlive(s, false)

    const bad = "Missing or invalid type/payload"
    const envelopes: Array<Record<string, unknown>> = [
      { type: 5, payload: {} },
      { type: null, payload: {} },
      { type: "", payload: {} },
      { type: ["discover"], payload: {} },
      { payload: {} },
      { type: "discover", payload: [] },
      { type: "discover", payload: null },
      { type: "discover", payload: 7 },
      { type: "discover", payload: "x" },
      { type: "discover" },
    ]
    for (const env of envelopes) {
      const requestId = newRequestId()
      expectError(await ask(s, { ...env, timestamp: Date.now(), requestId }), INVALID, bad, requestId)
      await expectAlive(s, false)
      expectError(await ask(s, { ...env, timestamp: Date.now() }), INVALID, bad, undefined)
      await expectAlive(s, false)
    }
    // JSON that is not an object
    for (const text of ["[1,2]", "\"discover\"", "null", "42"]) {
      s.sendText(text)
      expectError(await nextReply(s), INVALID, bad, undefined)
      await expectAlive(s, false)
    }

    await expectRequestError(s, requestFrame("fly_to_the_moon", {}), INVALID, "Unknown type: fly_to_the_moon", false)
    expectError(await ask(s, requestFrame("fly_to_the_moon", {})), INVALID, "Unknown type: fly_to_the_moon", undefined)
    await expectAlive(s, false)
  })

  test("requests without a requestId get replies without one; a plain HTTP request gets 426", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    const reg = await ask(s, registerFrame(me, UID))
    expect(reg.type).toBe("registered")
    const replies = [
      await ask(s, requestFrame("discover", {})),
      await ask(s, requestFrame("request_public_key", { targetId: me.publicKey })),
      await ask(s, sendFrame(makeIdentity().publicKey)),
      await ask(s, historyFrame(me, makeIdentity().publicKey)),
    ]
    expect(replies.map((f) => f.type)).toEqual(["discover_response", "public_key_response", "message_queued", "history_response"])
    for (const f of [reg, ...replies]) expect(Object.keys(f).sort()).toEqual(["payload", "timestamp", "type"])

    const res = await fetch(node.url.replace("ws://", "http://"))
    expect(res.status).toBe(426)
    expect(await res.text()).toBe("WebSocket upgrade required")
  })

  test("REGISTRATION_REQUIRED before registering", async () => {
    const s = await socks.open(node.url)
    const other = makeIdentity()
    const me = makeIdentity()
    const cases: Array<[Record<string, unknown>, string]> = [
      [sendFrame(other.publicKey), "Register before sending"],
      [historyFrame(me, other.publicKey), "Register first"],
      [requestFrame("discover", {}), "Register before discovering peers"],
      [requestFrame("request_public_key", { targetId: other.publicKey }), "Register before requesting public keys"],
      [requestFrame("ack", { messageHashes: [randomHash()] }), "Register before acknowledging messages"],
      [requestFrame("proof_request", { messageHash: randomHash() }), "Register before requesting proofs"],
    ]
    for (const [frame, message] of cases) {
      await expectRequestError(s, frame, "REGISTRATION_REQUIRED", message, false)
      // without a requestId, none back
      expectError(await ask(s, frame), "REGISTRATION_REQUIRED", message, undefined)
    }
    await registerRaw(s, me, UID)
    await expectAlive(s, true)
  })

  test("register: missing fields, bad keys, unknown network", async () => {
    const s = await socks.open(node.url)
    const id = makeIdentity()
    const missing = "Missing publicKey, l2psUid, or proof"
    const full = registerFrame(id, UID)
    const payload = full["payload"] as Record<string, unknown>
    for (const drop of ["publicKey", "l2psUid", "proof"]) {
      const { [drop]: _dropped, ...rest } = payload
      await expectRequestError(s, { ...full, payload: rest }, INVALID, missing, false)
      await expectRequestError(s, { ...full, payload: { ...payload, [drop]: "" } }, INVALID, missing, false)
      await expectRequestError(s, { ...full, payload: { ...payload, [drop]: 12 } }, INVALID, missing, false)
    }

    const badKey = "Invalid publicKey format (expected 64 hex characters)"
    const keys = [
      id.publicKey.slice(0, 63),
      id.publicKey + "0",
      "g" + id.publicKey.slice(1),
      "0x" + id.publicKey.slice(2),
      id.publicKey.slice(0, 62) + "  ",
    ]
    for (const k of keys) {
      await expectRequestError(s, registerFrame(id, UID, { publicKey: k }), INVALID, badKey, false)
    }

    await expectRequestError(s, registerFrame(id, "nope"), "L2PS_NOT_FOUND", "L2PS network nope not found", false)
    await expectRequestError(s, registerFrame(id, "alpha"), "L2PS_NOT_FOUND", "L2PS network alpha not found", false)

    // upper case is accepted and echoed as sent; discover lists the normalised key
    const upper = id.publicKey.toUpperCase()
    const requestId = newRequestId()
    const reg = await ask(s, registerFrame(id, UID, { publicKey: upper, requestId }))
    expect(reg).toMatchObject({ type: "registered", requestId, payload: { success: true, publicKey: upper, l2psUid: UID } })
    const disc = await ask(s, requestFrame("discover", {}, "d1"))
    expect(disc.payload.peers).toContain(id.publicKey)
  })

  test("register proofs: bad signature, wrong key, malformed, stale or future timestamp, replay", async () => {
    const s = await socks.open(node.url)
    const id = makeIdentity()
    const other = makeIdentity()
    const failed = "Signature verification failed"

    const frame = registerFrame(id, UID)
    const payload = frame["payload"] as Record<string, string>
    // a valid signature over another message
    const wrongMessage = { ...frame, payload: { ...payload, proof: id.signFn(`register:${id.publicKey}:${Number(frame["timestamp"]) + 1}`) } }
    await expectRequestError(s, wrongMessage, "INVALID_PROOF", failed, false)
    // a flipped bit
    const sig = payload["proof"]!
    const flipped = (parseInt(sig[0]!, 16) ^ 1).toString(16) + sig.slice(1)
    await expectRequestError(s, { ...frame, payload: { ...payload, proof: flipped } }, "INVALID_PROOF", failed, false)
    // signed by another key
    const ts = freshTimestamp()
    const byOther = { type: "register", timestamp: ts, payload: { publicKey: id.publicKey, l2psUid: UID, proof: other.signFn(`register:${id.publicKey}:${ts}`) } }
    await expectRequestError(s, byOther, "INVALID_PROOF", failed, false)
    // not a 64-byte hex signature
    const malformed = "Proof verification error: signature must be 128 hex characters"
    for (const proof of ["zz" + sig.slice(2), sig.slice(0, 126), sig + "00", "nothex"]) {
      await expectRequestError(s, { ...frame, payload: { ...payload, proof } }, "INVALID_PROOF", malformed, false)
    }
    // the frame timestamp must be an integer of ms
    const badTs = "Proof verification error: frame timestamp must be an integer (ms)"
    const { timestamp: _t, ...noTimestamp } = frame
    await expectRequestError(s, noTimestamp, "INVALID_PROOF", badTs, false)
    await expectRequestError(s, { ...frame, timestamp: String(frame["timestamp"]) }, "INVALID_PROOF", badTs, false)
    await expectRequestError(s, { ...frame, timestamp: Number(frame["timestamp"]) + 0.5 }, "INVALID_PROOF", badTs, false)

    // outside 300 s before and 30 s after the node's clock (SECURITY.md 2), correctly signed
    const expired = "Proof expired: timestamp must be within 300 s of the node's clock, at most 30 s ahead"
    await expectRequestError(s, registerFrame(id, UID, { timestamp: Date.now() - 301_000 }), "INVALID_PROOF", expired, false)
    await expectRequestError(s, registerFrame(id, UID, { timestamp: Date.now() + 301_000 }), "INVALID_PROOF", expired, false)
    await expectRequestError(s, registerFrame(id, UID, { timestamp: Date.now() + 40_000 }), "INVALID_PROOF", expired, false)

    // the frame itself is still good: it registers once…
    const requestId = newRequestId()
    expect(await ask(s, { ...frame, requestId })).toMatchObject({ type: "registered", requestId })
    await expectAlive(s, true)
    // …and its replay is refused, on another socket and on the same one
    const s2 = await socks.open(node.url)
    await expectRequestError(s2, frame, "INVALID_PROOF", "Proof already used", false)
    await expectRequestError(s, frame, "INVALID_PROOF", "Proof already used", true)

    // inside the window (290 s old) is accepted
    expect(await ask(s2, registerFrame(id, UID, { timestamp: Date.now() - 290_000 }))).toMatchObject({ type: "registered" })
  })

  test("send: missing fields, bad encrypted payload, invalid `to`, self-send, ciphertext size, duplicate hash", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    const peer = makeIdentity()
    await registerRaw(s, me, UID)

    const missing = "Missing to, encrypted, or messageHash"
    const base = { to: peer.publicKey, encrypted: encrypted(), messageHash: randomHash() }
    for (const drop of ["to", "encrypted", "messageHash"] as const) {
      const { [drop]: _d, ...rest } = base
      await expectRequestError(s, requestFrame("send", rest), INVALID, missing, true)
      await expectRequestError(s, requestFrame("send", { ...base, [drop]: "" }), INVALID, missing, true)
    }
    await expectRequestError(s, requestFrame("send", { ...base, encrypted: "ciphertext" }), INVALID, missing, true)
    await expectRequestError(s, requestFrame("send", { ...base, encrypted: null }), INVALID, missing, true)

    const encMsg = "Encrypted payload must have ciphertext and nonce"
    const encs = [{ nonce: "bm9uY2U=" }, { ciphertext: "Y2lwaGVy" }, { ciphertext: "", nonce: "bm9uY2U=" }, { ciphertext: 5, nonce: "bm9uY2U=" }, {}]
    for (const enc of encs) {
      await expectRequestError(s, sendFrame(peer.publicKey, randomHash(), enc), INVALID, encMsg, true)
    }

    const badTo = "Invalid recipient key (expected 64 hex characters)"
    for (const to of [peer.publicKey.slice(0, 63), peer.publicKey + "a", "x" + peer.publicKey.slice(1), "0x" + peer.publicKey.slice(2), "bob"]) {
      await expectRequestError(s, sendFrame(to), INVALID, badTo, true)
    }

    const self = "Cannot send message to yourself"
    await expectRequestError(s, sendFrame(me.publicKey), INVALID, self, true)
    await expectRequestError(s, sendFrame(me.publicKey.toUpperCase()), INVALID, self, true)

    const tooLarge = "Ciphertext too large (max 131072 bytes)"
    await expectRequestError(s, sendFrame(peer.publicKey, randomHash(), encrypted("A".repeat(131073))), INVALID, tooLarge, true)
    // exactly 131072 characters is accepted (the peer is offline: queued)
    const hash = randomHash()
    const requestId = newRequestId()
    const ok = await ask(s, { ...sendFrame(peer.publicKey, hash, encrypted("A".repeat(131072))), requestId })
    expect(ok).toEqual({ type: "message_queued", payload: { messageHash: hash, status: "queued" }, timestamp: expect.any(Number), requestId })

    // the same sender reusing the hash for another recipient; another sender may use it
    const reused = "Duplicate message: this messageHash was already sent to another recipient"
    await expectRequestError(s, sendFrame(makeIdentity().publicKey, hash), INVALID, reused, true)
    expectError(await ask(s, sendFrame(makeIdentity().publicKey, hash)), INVALID, reused, undefined)
    const s2 = await socks.open(node.url)
    await registerRaw(s2, makeIdentity(), UID)
    expect(await ask(s2, sendFrame(peer.publicKey, hash))).toMatchObject({ type: "message_queued", payload: { messageHash: hash } })
    await expectAlive(s2, true)
  })

  test("history: missing fields, invalid peerKey, limit 0/201/\"5\"/2.5, bad, stale and replayed proofs", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    const peer = makeIdentity()
    await registerRaw(s, me, UID)

    const good = historyFrame(me, peer.publicKey)
    const payload = good["payload"] as Record<string, unknown>
    for (const drop of ["peerKey", "proof"]) {
      const { [drop]: _d, ...rest } = payload
      await expectRequestError(s, { ...good, payload: rest }, INVALID, "Missing peerKey or proof", true)
      await expectRequestError(s, { ...good, payload: { ...payload, [drop]: "" } }, INVALID, "Missing peerKey or proof", true)
    }
    await expectRequestError(s, historyFrame(me, "bob"), INVALID, "Invalid peerKey format (expected 64 hex characters)", true)

    const badLimit = "limit must be an integer from 1 to 200"
    for (const limit of [0, 201, "5", 2.5, -1, null, true]) {
      await expectRequestError(s, historyFrame(me, peer.publicKey, { limit }), INVALID, badLimit, true)
    }
    for (const limit of [200, 1]) {
      const requestId = newRequestId()
      const f = await ask(s, historyFrame(me, peer.publicKey, { limit, requestId }))
      expect(f).toEqual({ type: "history_response", payload: { messages: [], hasMore: false }, timestamp: expect.any(Number), requestId })
    }

    // proofs
    const failed = "History proof failed"
    const ts = freshTimestamp()
    const wrongPeer = { type: "history", timestamp: ts, payload: { peerKey: peer.publicKey, proof: me.signFn(`history:${makeIdentity().publicKey}:${ts}`) } }
    await expectRequestError(s, wrongPeer, "INVALID_PROOF", failed, true)
    const ts2 = freshTimestamp()
    const byOther = { type: "history", timestamp: ts2, payload: { peerKey: peer.publicKey, proof: peer.signFn(`history:${peer.publicKey}:${ts2}`) } }
    await expectRequestError(s, byOther, "INVALID_PROOF", failed, true)
    const expired = "Proof expired: timestamp must be within 300 s of the node's clock, at most 30 s ahead"
    await expectRequestError(s, historyFrame(me, peer.publicKey, { timestamp: Date.now() - 301_000 }), "INVALID_PROOF", expired, true)
    await expectRequestError(s, historyFrame(me, peer.publicKey, { timestamp: Date.now() + 301_000 }), "INVALID_PROOF", expired, true)
    await expectRequestError(s, historyFrame(me, peer.publicKey, { timestamp: Date.now() + 40_000 }), "INVALID_PROOF", expired, true)

    // `good` has not been used yet: accepted once, then a replay
    const requestId = newRequestId()
    expect(await ask(s, { ...good, requestId })).toMatchObject({ type: "history_response", requestId })
    await expectRequestError(s, good, "INVALID_PROOF", "Proof already used", true)
  })

  test("request_public_key, ack and proof_request errors; PEER_NOT_FOUND", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    await registerRaw(s, me, UID)
    await expectRequestError(s, requestFrame("request_public_key", {}), INVALID, "Missing targetId", true)
    await expectRequestError(s, requestFrame("request_public_key", { targetId: "" }), INVALID, "Missing targetId", true)
    // an offline target is not an error: publicKey null
    const offline = makeIdentity().publicKey
    const requestId = newRequestId()
    expect(await ask(s, requestFrame("request_public_key", { targetId: offline }, requestId))).toEqual({
      type: "public_key_response",
      payload: { targetId: offline, publicKey: null },
      timestamp: expect.any(Number),
      requestId,
    })

    const ackMsg = "messageHashes must be a list of 1 to 500 message hashes"
    for (const p of [{}, { messageHashes: [] }, { messageHashes: "h" }, { messageHashes: [""] }, { messageHashes: [1] }]) {
      await expectRequestError(s, requestFrame("ack", p), INVALID, ackMsg, true)
    }

    await expectRequestError(s, requestFrame("proof_request", {}), INVALID, "Missing messageHash", true)
    await expectRequestError(s, requestFrame("proof_request", { messageHash: randomHash() }), "PEER_NOT_FOUND", "Message not found", true)
    // a message of someone else's conversation is "not found" too
    const a = await socks.open(node.url)
    const aid = makeIdentity()
    await registerRaw(a, aid, UID)
    const hash = randomHash()
    expect((await ask(a, sendFrame(makeIdentity().publicKey, hash))).type).toBe("message_queued")
    await expectRequestError(s, requestFrame("proof_request", { messageHash: hash }), "PEER_NOT_FOUND", "Message not found", true)
  })

  // DECISIONS.md L2PS 2: "A public key is exactly 64 hex characters … Anything else: INVALID_MESSAGE."
  // (14 keeps `publicKey: null` for an *offline* key, which is a well-formed one.)
  test("request_public_key with a malformed targetId is INVALID_MESSAGE", async () => {
    const s = await socks.open(node.url)
    await registerRaw(s, makeIdentity(), UID)
    for (const targetId of ["nobody", "ab".repeat(31) + "a", "0x" + "ab".repeat(31)]) {
      const requestId = newRequestId()
      const f = await ask(s, requestFrame("request_public_key", { targetId }, requestId))
      expect({ type: f.type, code: f.payload?.code, requestId: f.requestId }).toEqual({ type: "error", code: INVALID, requestId })
      await expectAlive(s, true)
    }
  })

  // DECISIONS.md L2PS 1: the requestId is opaque and echoed verbatim (the SDK's ids are ~28 chars;
  // nothing in the contract bounds them below the 262144-char frame limit).
  test("a long requestId (1000 chars) is still opaque: the request is processed and the id echoed", async () => {
    const s = await socks.open(node.url)
    const id = makeIdentity()
    const longId = "req_" + "x".repeat(996)
    const reg = await ask(s, registerFrame(id, UID, { requestId: longId }))
    // compared by length and equality to keep a failure readable
    expect({ type: reg.type, payload: reg.payload, requestIdLength: String(reg.requestId ?? "").length }).toMatchObject({
      type: "registered",
      requestIdLength: longId.length,
    })
    expect(reg.requestId === longId).toBe(true)
    const f = await ask(s, requestFrame("fly", {}, longId))
    expect({ type: f.type, payload: f.payload, echoed: f.requestId === longId }).toEqual({
      type: "error",
      payload: { code: INVALID, message: "Unknown type: fly" },
      echoed: true,
    })
  })

  test("sizes and encodings: 262144-char frames, binary frames, invalid UTF-8, a frame over 1 MiB closes with 1009", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    await registerRaw(s, me, UID)

    // exactly 262144 characters (JSON padded with spaces) is processed
    const discover = JSON.stringify({ type: "discover", payload: {}, timestamp: Date.now(), requestId: "big-ok" })
    s.sendText(discover + " ".repeat(262144 - discover.length))
    expect(await nextReply(s)).toMatchObject({ type: "discover_response", requestId: "big-ok" })
    // one more character: error without requestId, the connection stays open
    s.sendText(discover + " ".repeat(262145 - discover.length))
    expectError(await nextReply(s), INVALID, "Message too large (max 262144 bytes)", undefined)
    await expectAlive(s, true)

    // a binary frame holding valid JSON is processed
    s.sendBinary(new TextEncoder().encode(JSON.stringify({ type: "discover", payload: {}, timestamp: Date.now(), requestId: "bin" })))
    const bin = await nextReply(s)
    expect(bin).toMatchObject({ type: "discover_response", requestId: "bin" })
    expect(bin.payload.peers).toContain(me.publicKey)
    // invalid UTF-8
    s.sendBinary(new Uint8Array([0x7b, 0xff, 0xfe, 0xfd, 0x7d]))
    expectError(await nextReply(s), INVALID, "Binary frame is not valid UTF-8", undefined)
    await expectAlive(s, true)
    // a binary frame that is UTF-8 but not JSON
    s.sendBinary(new TextEncoder().encode("not json"))
    expectError(await nextReply(s), INVALID, "Invalid JSON", undefined)
    await expectAlive(s, true)

    // above the socket's 1 MiB maximum payload: closed with 1009
    const huge = await socks.open(node.url)
    huge.sendText("x".repeat(1024 * 1024 + 1))
    const closed = await Promise.race([huge.closed, sleep(5000).then(() => null)])
    expect(closed?.code).toBe(1009)
    // the node and the other socket are fine
    await expectAlive(s, true)
    const fresh = await socks.open(node.url)
    await registerRaw(fresh, makeIdentity(), UID)
  })

  test("a burst of 200 garbage frames is answered frame by frame, and the node still serves a fresh client", async () => {
    const g = await socks.open(node.url)
    for (let i = 0; i < 200; i++) g.sendText(`garbage ${i} \u0000 ${"#".repeat(i)}`)
    for (let i = 0; i < 200; i++) expectError(await g.next(3000), INVALID, "Invalid JSON", undefined)
    await sleep(50) // let the per-connection frame bucket refill a little
    await expectAlive(g, false)

    const fresh = await socks.open(node.url)
    const id = makeIdentity()
    await registerRaw(fresh, id, UID)
    const disc = await ask(fresh, requestFrame("discover", {}, "after-burst"))
    expect(disc).toMatchObject({ type: "discover_response", requestId: "after-burst" })
    expect(disc.payload.peers).toContain(id.publicKey)
  })
})

describe("L2PS errors (tight limits: burst 5 at 1/s, 3 offline per pair, 1 session per key)", () => {
  let node: NodeProcess
  const socks = sockets()
  let netDir: string | undefined

  beforeAll(async () => {
    // a second network with its own limits: 2 messages per (long) epoch
    netDir = fs.mkdtempSync(path.join(os.tmpdir(), "im-e2e-nets-"))
    const networksFile = path.join(netDir, "networks.json")
    fs.writeFileSync(networksFile, JSON.stringify({ quota: { epochQuota: 2, epochSeconds: 3600 } }))
    node = await startE2eNode({
      RATE_LIMIT_BURST: "5",
      RATE_LIMIT_PER_SEC: "1",
      OFFLINE_QUEUE_PER_PAIR: "3",
      MAX_SESSIONS_PER_KEY: "1",
      L2PS_BATCH_INTERVAL_MS: "600000",
      L2PS_NETWORKS_FILE: networksFile,
    })
  }, 30000)
  afterEach(() => socks.closeAll())
  afterAll(async () => {
    await socks.closeAll()
    await node?.dispose()
    if (netDir !== undefined) fs.rmSync(netDir, { recursive: true, force: true })
  })

  test("RATE_LIMITED: the 6th quick send; per key, so a new connection does not reset it", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    await registerRaw(s, me, UID)
    const r = await socks.open(node.url)
    const rid = makeIdentity()
    await registerRaw(r, rid, UID)

    const ids = Array.from({ length: 6 }, () => newRequestId())
    const hashes = ids.map(() => randomHash())
    ids.forEach((id, i) => s.sendJson({ ...sendFrame(rid.publicKey, hashes[i]), requestId: id }))
    // Replies are matched by requestId: the refusal needs no commit, so it may come before the acks.
    const replies = new Map<unknown, RawSocket.Frame>()
    for (let i = 0; i < 6; i++) {
      const f = await nextReply(s)
      replies.set(f.requestId, f)
    }
    for (let i = 0; i < 5; i++) {
      expect(replies.get(ids[i])).toMatchObject({ type: "message_sent", requestId: ids[i], payload: { messageHash: hashes[i], l2psStatus: "submitted" } })
    }
    expectError(replies.get(ids[5])!, "RATE_LIMITED", "Rate limit exceeded (1 messages/s)", ids[5])
    await expectAlive(s, true)

    // a fresh connection of the same key is still limited (and replaces the old one: 1 session per key)
    const s2 = await socks.open(node.url)
    await registerRaw(s2, me, UID)
    await expectRequestError(s2, sendFrame(rid.publicKey), "RATE_LIMITED", "Rate limit exceeded (1 messages/s)", true)
    // the bucket refills at 1/s
    await sleep(1100)
    expect((await ask(s2, sendFrame(rid.publicKey))).type).toBe("message_sent")
    const got = r.received.map((f) => JSON.parse(f.raw)).filter((f) => f.type === "message")
    expect(got.length).toBe(6)
  })

  test("offline pair limit: the 4th queued message for one recipient is RATE_LIMITED \"Offline message limit reached\"", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    await registerRaw(s, me, UID)
    const away = makeIdentity()
    for (let i = 0; i < 3; i++) {
      expect((await ask(s, sendFrame(away.publicKey))).type).toBe("message_queued")
    }
    await expectRequestError(s, sendFrame(away.publicKey), "RATE_LIMITED", "Offline message limit reached", true)
    // the limit is per pair: another recipient is fine
    expect((await ask(s, sendFrame(makeIdentity().publicKey))).type).toBe("message_queued")
    // the recipient connects and gets its 3
    const r = await socks.open(node.url)
    await registerRaw(r, away, UID)
    for (let i = 0; i < 3; i++) expect(await r.nextOfType("message")).toMatchObject({ payload: { from: me.publicKey, offline: true } })
    await r.expectNothing(200)
  })

  test("RATE_LIMITED: the epoch quota of a network configured in L2PS_NETWORKS_FILE", async () => {
    const s = await socks.open(node.url)
    const me = makeIdentity()
    await registerRaw(s, me, "quota")
    const to = makeIdentity().publicKey
    expect((await ask(s, sendFrame(to))).type).toBe("message_queued")
    expect((await ask(s, sendFrame(to))).type).toBe("message_queued")
    await expectRequestError(s, sendFrame(to), "RATE_LIMITED", "Quota exceeded (2 messages per 3600 s)", true)
    // the same key in the default network has its own limits
    const d = await socks.open(node.url)
    await registerRaw(d, me, UID)
    expect((await ask(d, sendFrame(to))).type).toBe("message_queued")
  })

  test("MAX_SESSIONS_PER_KEY=1: the older socket is closed with 4001, without presence churn", async () => {
    const watcher = await socks.open(node.url)
    const w = makeIdentity()
    await registerRaw(watcher, w, UID)
    const k = makeIdentity()
    const s1 = await socks.open(node.url)
    await registerRaw(s1, k, UID)
    expect(await watcher.nextOfType("peer_joined")).toMatchObject({ payload: { publicKey: k.publicKey } })

    const s2 = await socks.open(node.url)
    await registerRaw(s2, k, UID)
    const closed = await Promise.race([s1.closed, sleep(3000).then(() => null)])
    expect(closed?.code).toBe(4001)
    await expectAlive(s2, true)
    const disc = await ask(s2, requestFrame("discover", {}, "d"))
    expect(disc.payload.peers).toContain(k.publicKey)
    // the watcher sees neither a peer_left nor a second peer_joined
    await sleep(200)
    const presence = watcher.drain().filter((f) => f?.payload?.publicKey === k.publicKey)
    expect(presence).toEqual([])
  })
})
