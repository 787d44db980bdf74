/**
 * Security cases over real sockets that test/e2e does not already cover: captured proofs reused with
 * other (unsigned) fields or for another key, reading someone else's conversation, the same key in two
 * networks, and floods from one address against the per-address limits (MAX_CONNECTIONS_PER_ADDRESS,
 * REGISTRATION_BURST_PER_ADDRESS, REGISTRATION_RATE_PER_ADDRESS). Already covered elsewhere, so not
 * repeated here: the exact replay of a register or history frame on the same and on another socket,
 * proofs signed by another key, stale proofs (test/e2e/errors.test.ts); discovery, lookup and a send
 * across networks (test/e2e/messaging.test.ts "network isolation"); proof_request on someone else's
 * message (errors.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import * as os from "node:os"
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
  type Identity,
  makeIdentity,
  newRequestId,
  registerFrame,
  registerRaw,
  requestFrame,
  sleep,
  startE2eNode,
} from "../e2e/helpers.ts"
import { isAlive } from "./support.ts"

const UID = "default"
const BETA = "beta"
const MAX_CONNECTIONS = 16
const REGISTRATION_BURST = 24
const REGISTRATION_RATE = 2

/** An IPv4 address of this machine other than loopback, to connect from another remote address. */
const otherAddress = (): string | undefined =>
  Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address

const send = (to: string, messageHash: string = randomHash()) => requestFrame("send", { to, encrypted: encrypted(), messageHash })

describe("security over real sockets", () => {
  let node: NodeProcess
  const open: RawSocket.RawSocket[] = []
  const socket = async (url: string = node.url): Promise<RawSocket.RawSocket> => {
    const s = await RawSocket.open(url)
    open.push(s)
    return s
  }
  const registered = async (id: Identity = makeIdentity(), uid: string = UID, capabilities?: ReadonlyArray<string>) => {
    const s = await socket()
    const requestId = newRequestId()
    const reply = await ask(s, registerFrame(id, uid, capabilities === undefined ? { requestId } : { requestId, capabilities }))
    expect(reply).toMatchObject({ type: "registered", requestId })
    return { s, id, key: id.publicKey }
  }

  beforeAll(async () => {
    node = await startE2eNode({
      L2PS_NETWORKS: `${UID},${BETA}`,
      L2PS_BATCH_INTERVAL_MS: "600000",
      MAX_CONNECTIONS_PER_ADDRESS: String(MAX_CONNECTIONS),
      REGISTRATION_BURST_PER_ADDRESS: String(REGISTRATION_BURST),
      REGISTRATION_RATE_PER_ADDRESS: String(REGISTRATION_RATE),
    }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
  })
  afterAll(async () => {
    await node?.dispose()
  })

  test("a register proof is bound to its key: forged uses fail without burning it; once used, no unsigned field makes it new", async () => {
    const watcher = await registered()
    const a = makeIdentity()
    const b = makeIdentity()
    const x = await socket()
    const failed = "Signature verification failed"

    // A signs a proof; before A uses it, an attacker tries it for B, and for A's key in another spelling
    const frame = registerFrame(a, UID)
    const payload = frame["payload"] as Record<string, unknown>
    await expectRequestError(x, { ...frame, payload: { ...payload, publicKey: b.publicKey } }, "INVALID_PROOF", failed, false)
    await expectRequestError(x, { ...frame, payload: { ...payload, publicKey: a.publicKey.toUpperCase() } }, "INVALID_PROOF", failed, false)
    // …and with another timestamp
    await expectRequestError(x, { ...frame, timestamp: freshTimestamp() }, "INVALID_PROOF", failed, false)
    // none of it registered B, or burned A's proof: A registers with it
    const sa = await socket()
    expect(await ask(sa, { ...frame, requestId: "a-reg" })).toMatchObject({ type: "registered", requestId: "a-reg", payload: { publicKey: a.publicKey } })

    // now used: the same proof with another network, capabilities or requestId is a replay
    const used = "Proof already used"
    await expectRequestError(x, { ...frame, payload: { ...payload, l2psUid: BETA } }, "INVALID_PROOF", used, false)
    await expectRequestError(x, { ...frame, payload: { ...payload, capabilities: ["ack"] } }, "INVALID_PROOF", used, false)
    await expectRequestError(x, { ...frame, requestId: "other" }, "INVALID_PROOF", used, false)

    // the watcher heard of A only, and B is nowhere
    const disc = await ask(watcher.s, requestFrame("discover", {}, "d"))
    expect(disc.payload.peers).toContain(a.publicKey)
    expect(disc.payload.peers).not.toContain(b.publicKey)
    const joined = watcher.s.received.map((f) => JSON.parse(f.raw)).filter((f) => f.type === "peer_joined").map((f) => f.payload.publicKey)
    expect(joined).toEqual([a.publicKey])
    const beta = await registered(makeIdentity(), BETA)
    const betaDisc = await ask(beta.s, requestFrame("discover", {}, "d"))
    expect(betaDisc.payload.peers).not.toContain(a.publicKey)
  })

  test("history: a third party never reads A↔B, whatever it puts in the request; a captured history request is useless to it", async () => {
    const a = await registered()
    const b = await registered()
    const c = await registered()
    const hashes = { ab1: randomHash(), ab2: randomHash(), ba: randomHash(), ca: randomHash() }
    // (live messages arrive in between: wait for the acknowledgement itself)
    const sent = async (from: RawSocket.RawSocket, to: string, hash: string) => {
      from.sendJson(send(to, hash))
      expect(await from.nextOfType("message_sent")).toMatchObject({ payload: { messageHash: hash } })
    }
    await sent(a.s, b.key, hashes.ab1)
    await sent(a.s, b.key, hashes.ab2)
    await sent(b.s, a.key, hashes.ba)
    await sent(c.s, a.key, hashes.ca)
    const history = async (s: RawSocket.RawSocket, frame: Record<string, unknown>) => {
      s.sendJson(frame)
      return s.nextOfType("history_response")
    }
    const hashesOf = (f: RawSocket.Frame) => (f.payload.messages as Array<{ messageHash: string }>).map((m) => m.messageHash).sort()

    // positive control: B sees the conversation
    const own = await history(b.s, historyFrame(b.id, a.key, { requestId: "b" }))
    expect(hashesOf(own)).toEqual([hashes.ab1, hashes.ab2, hashes.ba].sort())

    // C asking about A gets C↔A only; about B, nothing
    expect(hashesOf(await history(c.s, historyFrame(c.id, a.key)))).toEqual([hashes.ca])
    expect(hashesOf(await history(c.s, historyFrame(c.id, b.key)))).toEqual([])
    // extra fields naming A as the owner are ignored: the requester is the registered key
    for (const extra of [{ publicKey: a.key }, { from: a.key, to: b.key }, { owner: a.key, peerKey2: a.key }, { l2psUid: BETA }]) {
      const f = historyFrame(c.id, b.key)
      const withExtra = { ...f, payload: { ...(f["payload"] as object), ...extra } }
      expect(hashesOf(await history(c.s, withExtra))).toEqual([])
    }

    // A's own history request (peer B), captured and replayed by C: verified under C's key, refused
    const captured = historyFrame(a.id, b.key)
    c.s.drain()
    a.s.drain()
    await expectRequestError(c.s, captured, "INVALID_PROOF", "History proof failed", true)
    // C's failed try did not burn it: A's request still works, once
    expect(hashesOf(await history(a.s, captured))).toEqual([hashes.ab1, hashes.ab2, hashes.ba].sort())
    await expectRequestError(a.s, captured, "INVALID_PROOF", "Proof already used", true)
  })

  test("one key in two networks: a default-network message reaches only the default session; from beta it is not in history, proofs or acks", async () => {
    const a = await registered()
    const bid = makeIdentity()
    const bDefault = await registered(bid, UID, ["ack"])
    const bBeta = await registered(bid, BETA, ["ack"])
    const hash = randomHash()
    expect(await ask(a.s, send(bid.publicKey, hash))).toMatchObject({ type: "message_sent", payload: { messageHash: hash } })
    expect(await bDefault.s.nextOfType("message")).toMatchObject({ payload: { from: a.key, messageHash: hash, offline: false } })

    // beta: nothing of it
    const hist = await ask(bBeta.s, historyFrame(bid, a.key, { requestId: "h" }))
    expect(hist).toMatchObject({ type: "history_response", payload: { messages: [], hasMore: false } })
    await expectRequestError(bBeta.s, requestFrame("proof_request", { messageHash: hash }), "PEER_NOT_FOUND", "Message not found", true)
    expect(await ask(bBeta.s, requestFrame("ack", { messageHashes: [hash] }, "ack-beta"))).toMatchObject({
      type: "ack_response",
      requestId: "ack-beta",
      payload: { messageHashes: [] },
    })
    // the default session's ack is the one that counts: A gets its receipt then, and only then
    expect(a.s.received.some((f) => JSON.parse(f.raw).type === "message_delivered")).toBe(false)
    expect(await ask(bDefault.s, requestFrame("ack", { messageHashes: [hash] }, "ack-default"))).toMatchObject({
      type: "ack_response",
      payload: { messageHashes: [hash] },
    })
    expect(await a.s.nextOfType("message_delivered")).toMatchObject({ payload: { messageHash: hash } })
    // the beta session never saw the message or presence of A
    expect(bBeta.s.received.map((f) => JSON.parse(f.raw)).filter((f) => f.type === "message" || f.payload?.publicKey === a.key)).toEqual([])
  })

  test(`connections past MAX_CONNECTIONS_PER_ADDRESS=${MAX_CONNECTIONS} are closed with 1008; sessions already open and other addresses are served`, async () => {
    const a = await registered()
    const b = await registered()
    // open until refused: with a and b, exactly MAX_CONNECTIONS are open then
    const flood: RawSocket.RawSocket[] = []
    let refused: RawSocket.CloseInfo | undefined
    for (let i = 0; i < MAX_CONNECTIONS + 5 && refused === undefined; i++) {
      const s = await socket()
      const closed = await Promise.race([s.closed, sleep(150).then(() => undefined)])
      if (closed === undefined) flood.push(s)
      else refused = closed
    }
    expect(refused).toEqual({ code: 1008, reason: "Too many connections from this address" })
    expect(flood.length + 2).toBe(MAX_CONNECTIONS)
    // every further attempt is refused too
    for (let i = 0; i < 3; i++) {
      const s = await socket()
      expect(await s.closed).toEqual({ code: 1008, reason: "Too many connections from this address" })
    }

    // the sessions already open work
    const hash = randomHash()
    expect(await ask(a.s, send(b.key, hash))).toMatchObject({ type: "message_sent" })
    expect(await b.s.nextOfType("message")).toMatchObject({ payload: { messageHash: hash } })
    // another address is served
    const other = otherAddress()
    if (other !== undefined) {
      const s = await socket(node.url.replace("127.0.0.1", other))
      await registerRaw(s, makeIdentity(), UID)
      await expectAlive(s, true)
    } else {
      console.warn("no non-loopback IPv4 address: the other-address part is skipped")
    }
    // a closed connection frees its slot
    await flood[0]!.close()
    let accepted: RawSocket.RawSocket | undefined
    // until the server has processed the close: at most 20 tries
    for (let i = 0; i < 20 && accepted === undefined; i++) {
      const s = await socket()
      const closed = await Promise.race([s.closed, sleep(100).then(() => undefined)])
      if (closed === undefined) accepted = s
      else await sleep(20)
    }
    expect(accepted).toBeDefined()
    await expectAlive(accepted!, false)
    expect(isAlive(node.pid)).toBe(true)
  })

  // Last: it spends 127.0.0.1's registration bucket.
  test(`registrations past REGISTRATION_BURST_PER_ADDRESS=${REGISTRATION_BURST} are RATE_LIMITED before any proof check, refilled at ${REGISTRATION_RATE}/s; registered sessions and other addresses are served`, async () => {
    const a = await registered()
    const b = await registered()
    const s = await socket()
    const limited = "Too many registrations from this address"
    // the bucket holds at most REGISTRATION_BURST (it may be partly spent by earlier tests)
    let accepted = 0
    let first: RawSocket.Frame | undefined
    for (let i = 0; i < REGISTRATION_BURST + 10 && first === undefined; i++) {
      const reply = await ask(s, registerFrame(makeIdentity(), UID))
      if (reply.type === "registered") accepted++
      else first = reply
    }
    expect(first).toMatchObject({ type: "error", payload: { code: "RATE_LIMITED", message: limited } })
    expect(accepted).toBeGreaterThan(0)
    expect(accepted).toBeLessThanOrEqual(REGISTRATION_BURST + 2)
    // right after: refused before the proof is even checked (a bad proof gets RATE_LIMITED too), on any
    // socket. The bucket refills continuously: the first refusal may have left it just short of a token,
    // so one of these may find a token again (and then fail its proof), never more in a few ms.
    const fresh = await socket()
    let proofChecked = 0
    for (let i = 0; i < 5; i++) {
      const requestId = newRequestId()
      const bad = registerFrame(makeIdentity(), UID, { requestId })
      const reply = await ask(fresh, { ...bad, payload: { ...(bad["payload"] as object), proof: "00".repeat(64) } })
      if (reply.payload?.["code"] === "INVALID_PROOF") proofChecked++
      else expectError(reply, "RATE_LIMITED", limited, requestId)
    }
    expect(proofChecked).toBeLessThanOrEqual(1)

    // registered sessions are not affected
    const hash = randomHash()
    expect(await ask(a.s, send(b.key, hash))).toMatchObject({ type: "message_sent" })
    expect(await b.s.nextOfType("message")).toMatchObject({ payload: { messageHash: hash } })
    // another address has its own bucket
    const other = otherAddress()
    if (other !== undefined) {
      const o = await socket(node.url.replace("127.0.0.1", other))
      await registerRaw(o, makeIdentity(), UID)
    }
    // the bucket refills at REGISTRATION_RATE/s: a registration goes through again within a second or so
    const t0 = Date.now()
    let again: RawSocket.Frame | undefined
    while (again?.type !== "registered") {
      if (Date.now() - t0 > 3000) throw new Error(`still refused after 3 s: ${JSON.stringify(again)}`)
      await sleep(100)
      again = await ask(fresh, registerFrame(makeIdentity(), UID))
    }
    expect(Date.now() - t0).toBeLessThan(2500)
    expect(isAlive(node.pid)).toBe(true)
  })
})
