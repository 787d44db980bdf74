/**
 * End to end: the node started as a user starts it (`bun run src/main.ts`), driven over real
 * WebSockets by the SDK-faithful L2psClient (DECISIONS.md, L2PS section).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import { encryptedFor, randomHash, type StoredMessage } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { makeIdentity, PeerPool, sleep, startE2eNode, waitUntil } from "./helpers.ts"

const ALPHA = "alpha"
const BETA = "beta"

describe("L2PS messaging (node serving alpha and beta)", () => {
  let node: NodeProcess
  const pool = new PeerPool()

  beforeAll(async () => {
    // A long batch interval keeps every message `l2ps_pending`, so statuses are deterministic.
    node = await startE2eNode({ L2PS_NETWORKS: `${ALPHA},${BETA}`, L2PS_BATCH_INTERVAL_MS: "600000" })
  }, 30000)
  afterEach(() => pool.disconnectAll())
  afterAll(async () => {
    pool.disconnectAll()
    await node?.dispose()
  })

  test("two clients register: registered payload, onlinePeers, peer_joined, discover, requestPublicKey", async () => {
    const a = await pool.connect(node.url, ALPHA)
    expect(a.registered).toEqual({ success: true, publicKey: a.key, l2psUid: ALPHA, onlinePeers: expect.any(Array) })
    expect(a.registered.onlinePeers).not.toContain(a.key)

    const b = await pool.connect(node.url, ALPHA)
    expect(b.registered.success).toBe(true)
    expect(b.registered.onlinePeers).toContain(a.key)
    expect(b.registered.onlinePeers).not.toContain(b.key)
    await waitUntil(() => a.joined.includes(b.key), "peer_joined(b) at a")
    expect(a.client.peers).toContain(b.key)
    // unsolicited frames never carry a requestId
    for (const f of a.framesOfType("peer_joined")) expect("requestId" in f).toBe(false)

    // discover includes the caller
    const peers = await a.client.discover()
    expect(peers).toContain(a.key)
    expect(peers).toContain(b.key)

    // online → key; upper case target → the same (normalised) key; unknown → null
    expect(await a.client.requestPublicKey(b.key)).toBe(b.key)
    expect(await a.client.requestPublicKey(b.key.toUpperCase())).toBe(b.key)
    expect(await a.client.requestPublicKey(makeIdentity().publicKey)).toBeNull()

    // offline (was online, then left) → null
    const c = await pool.connect(node.url, ALPHA)
    expect(await a.client.requestPublicKey(c.key)).toBe(c.key)
    c.client.disconnect()
    await waitUntil(() => a.left.includes(c.key), "peer_left(c) at a")
    expect(await a.client.requestPublicKey(c.key)).toBeNull()
    expect(await a.client.discover()).not.toContain(c.key)
  })

  test("live send: message_sent (submitted), the recipient gets the payload exactly as sent", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const b = await pool.connect(node.url, ALPHA)
    const enc = { ...encryptedFor("hello b"), ephemeralKey: "ab".repeat(32) }
    const hash = randomHash()
    const reply = await a.client.send(b.key, enc, hash)
    expect(reply).toEqual({ messageHash: hash, l2psStatus: "submitted" })
    const [msg] = await b.waitInbox(1)
    expect(msg).toEqual({ from: a.key, encrypted: enc, messageHash: hash, offline: false })
    for (const f of b.framesOfType("message")) expect("requestId" in f).toBe(false)

    // and back
    const back = encryptedFor("hello a")
    const hash2 = randomHash()
    expect(await b.client.send(a.key, back, hash2)).toEqual({ messageHash: hash2, l2psStatus: "submitted" })
    const [msg2] = await a.waitInbox(1)
    expect(msg2).toEqual({ from: b.key, encrypted: back, messageHash: hash2, offline: false })
    // a recipient key in upper case reaches the same peer
    const hash3 = randomHash()
    expect(await a.client.send(b.key.toUpperCase(), enc, hash3)).toEqual({ messageHash: hash3, l2psStatus: "submitted" })
    await b.waitInbox(2)
    expect(b.inbox[1]).toEqual({ from: a.key, encrypted: enc, messageHash: hash3, offline: false })
    await sleep(100)
    expect(b.inbox.length).toBe(2)
    expect(a.inbox.length).toBe(1)
  })

  test("send to an offline key: message_queued; delivered with offline:true, oldest first, after registered", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const later = makeIdentity()
    const sent: Array<{ hash: string; enc: ReturnType<typeof encryptedFor> }> = []
    for (let i = 0; i < 3; i++) {
      const enc = encryptedFor(`queued ${i}`)
      const hash = randomHash()
      expect(await a.client.send(later.publicKey, enc, hash)).toEqual({ messageHash: hash, status: "queued" })
      sent.push({ hash, enc })
    }
    const r = await pool.connect(node.url, ALPHA, { identity: later })
    const inbox = await r.waitInbox(3)
    expect(inbox).toEqual(sent.map((s) => ({ from: a.key, encrypted: s.enc, messageHash: s.hash, offline: true })))
    // the queued messages come after the `registered` reply
    for (const f of r.framesOfType("message")) expect("requestId" in f).toBe(false)
    const types = r.client.rawFrames.map((f) => (f.parsed as { type?: string }).type)
    expect(types.indexOf("registered")).toBeLessThan(types.indexOf("message"))
    await sleep(150)
    expect(r.inbox.length).toBe(3)

    // delivered once: a new session of the same key gets nothing more
    r.client.disconnect()
    const again = await pool.connect(node.url, ALPHA, { identity: later })
    await sleep(250)
    expect(again.inbox).toEqual([])
  })

  test("history: newest first, `before` paging over 7 messages with limit 3, hasMore, statuses", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const b = await pool.connect(node.url, ALPHA)
    const sent: Array<{ hash: string; from: string; to: string; enc: ReturnType<typeof encryptedFor> }> = []
    for (let i = 0; i < 7; i++) {
      const [from, to] = i % 3 === 2 ? [b, a] : [a, b]
      const enc = encryptedFor(`history ${i}`)
      const hash = randomHash()
      expect(await from.client.send(to.key, enc, hash)).toEqual({ messageHash: hash, l2psStatus: "submitted" })
      sent.push({ hash, from: from.key, to: to.key, enc })
    }
    await b.waitInbox(5)
    await a.waitInbox(2)

    const pages: StoredMessage[][] = []
    const page1 = await a.client.history(b.key, { limit: 3 })
    expect(page1.hasMore).toBe(true)
    expect(page1.messages.length).toBe(3)
    pages.push(page1.messages)
    await sleep(2) // a history proof (key, timestamp) is single-use: never two in the same ms
    const page2 = await a.client.history(b.key, { limit: 3, before: page1.messages[2]!.timestamp })
    expect(page2.hasMore).toBe(true)
    expect(page2.messages.length).toBe(3)
    pages.push(page2.messages)
    await sleep(2)
    const page3 = await a.client.history(b.key, { limit: 3, before: page2.messages[2]!.timestamp })
    expect(page3.hasMore).toBe(false)
    expect(page3.messages.length).toBe(1)
    pages.push(page3.messages)

    const all = pages.flat()
    // every message exactly once, newest first
    expect(all.map((m) => m.messageHash)).toEqual(sent.map((s) => s.hash).reverse())
    for (let i = 1; i < all.length; i++) expect(all[i]!.timestamp).toBeLessThan(all[i - 1]!.timestamp)
    const bySent = new Map(sent.map((s) => [s.hash, s]))
    for (const m of all) {
      const s = bySent.get(m.messageHash)!
      expect(m).toEqual({
        id: expect.any(String),
        from: s.from,
        to: s.to,
        messageHash: s.hash,
        encrypted: s.enc,
        l2psUid: ALPHA,
        l2psTxHash: null,
        timestamp: expect.any(Number),
        status: "delivered",
        deliveryStatus: "delivered",
        l2psStatus: "l2ps_pending",
      })
    }

    // the other side sees the same conversation; the default limit (50) returns it all
    await sleep(2)
    const fromB = await b.client.history(a.key)
    expect(fromB.hasMore).toBe(false)
    expect(fromB.messages.map((m) => m.messageHash)).toEqual(all.map((m) => m.messageHash))

    // `before` is exclusive: before = the newest timestamp leaves it out
    await sleep(2)
    const excl = await a.client.history(b.key, { before: all[0]!.timestamp })
    expect(excl.messages.map((m) => m.messageHash)).toEqual(all.slice(1).map((m) => m.messageHash))

    // a message queued for an offline peer shows as queued, newest first
    b.client.disconnect()
    await waitUntil(() => a.left.includes(b.key), "peer_left(b)")
    const qhash = randomHash()
    expect(await a.client.send(b.key, encryptedFor("while away"), qhash)).toEqual({ messageHash: qhash, status: "queued" })
    await sleep(2)
    const withQueued = await a.client.history(b.key, { limit: 2 })
    expect(withQueued.hasMore).toBe(true)
    expect(withQueued.messages[0]).toMatchObject({
      messageHash: qhash,
      deliveryStatus: "queued",
      status: "queued",
      l2psStatus: "l2ps_pending",
    })
    expect(withQueued.messages[1]!.messageHash).toBe(all[0]!.messageHash)
  })

  test("history paging never skips or repeats a message when both sides send at once", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const b = await pool.connect(node.url, ALPHA)
    const fromA = Array.from({ length: 10 }, () => randomHash())
    const fromB = Array.from({ length: 10 }, () => randomHash())
    const replies = await Promise.all([
      ...fromA.map((h) => a.client.send(b.key, encryptedFor("a"), h)),
      ...fromB.map((h) => b.client.send(a.key, encryptedFor("b"), h)),
    ])
    for (const r of replies) expect(r).toMatchObject({ l2psStatus: "submitted" })

    const seen: StoredMessage[] = []
    let before: number | undefined = undefined
    for (let page = 0; page < 10; page++) {
      await sleep(2)
      const res: { messages: StoredMessage[]; hasMore: boolean } = await a.client.history(
        b.key,
        before === undefined ? { limit: 3 } : { limit: 3, before },
      )
      seen.push(...res.messages)
      if (!res.hasMore) break
      before = res.messages.at(-1)!.timestamp
    }
    expect(seen.length).toBe(20)
    expect(new Set(seen.map((m) => m.messageHash)).size).toBe(20)
    // Equal timestamps are allowed within a conversation (at most 16 a ms), never out of order.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.timestamp).toBeLessThanOrEqual(seen[i - 1]!.timestamp)
    // each side's messages are stored in the order it sent them (frames of a connection are handled in order)
    expect(seen.filter((m) => m.from === a.key).map((m) => m.messageHash)).toEqual([...fromA].reverse())
    expect(seen.filter((m) => m.from === b.key).map((m) => m.messageHash)).toEqual([...fromB].reverse())
  })

  test("idempotent send: a retry returns the same reply and is delivered once; a hash reused for another recipient is refused; another sender may use it", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const b = await pool.connect(node.url, ALPHA)
    const enc = encryptedFor("once")
    const hash = randomHash()
    const first = await a.client.send(b.key, enc, hash)
    expect(first).toEqual({ messageHash: hash, l2psStatus: "submitted" })
    expect(await a.client.send(b.key, enc, hash)).toEqual(first)
    await b.waitInbox(1)
    // queued retry: same reply, delivered once
    const away = makeIdentity()
    const qhash = randomHash()
    const queued = await a.client.send(away.publicKey, enc, qhash)
    expect(queued).toEqual({ messageHash: qhash, status: "queued" })
    expect(await a.client.send(away.publicKey, enc, qhash)).toEqual(queued)

    // the same sender reusing a hash for another recipient is refused; another sender may use it
    await expect(a.client.send(away.publicKey, enc, hash)).rejects.toThrow("Duplicate message")
    const errorFrame = a.framesOfType("error").at(-1)!
    expect(errorFrame["payload"]).toEqual({
      code: "INVALID_MESSAGE",
      message: "Duplicate message: this messageHash was already sent to another recipient"
    })
    expect(typeof errorFrame["requestId"]).toBe("string")
    const c = await pool.connect(node.url, ALPHA)
    expect(await c.client.send(b.key, encryptedFor("another"), hash)).toEqual({ messageHash: hash, l2psStatus: "submitted" })

    await b.waitInbox(2)
    await sleep(200)
    expect(b.inbox.map((m) => [m.from, m.messageHash])).toEqual([[a.key, hash], [c.key, hash]])
    const r = await pool.connect(node.url, ALPHA, { identity: away })
    await r.waitInbox(1)
    await sleep(200)
    expect(r.inbox.map((m) => m.messageHash)).toEqual([qhash])
    const h = await a.client.history(b.key)
    expect(h.messages.filter((m) => m.messageHash === hash).length).toBe(1)
    expect(h.messages.find((m) => m.messageHash === hash)!.from).toBe(a.key)
  })

  test("ack capability: redelivered until acked; the sender gets message_delivered; then never again", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const rid = makeIdentity()
    const hashes = [randomHash(), randomHash()]
    const encs = [encryptedFor("ack 1"), encryptedFor("ack 2")]
    for (let i = 0; i < 2; i++) {
      expect(await a.client.send(rid.publicKey, encs[i]!, hashes[i]!)).toEqual({ messageHash: hashes[i]!, status: "queued" })
    }
    const expected = hashes.map((h, i) => ({ from: a.key, encrypted: encs[i]!, messageHash: h, offline: true }))

    // first session: receives both, does not ack
    const r1 = await pool.connect(node.url, ALPHA, { identity: rid, capabilities: ["ack"] })
    expect(await r1.waitInbox(2)).toEqual(expected)
    r1.client.disconnect()
    await waitUntil(() => a.left.includes(rid.publicKey), "peer_left(r1)")

    // reconnect: both again
    const r2 = await pool.connect(node.url, ALPHA, { identity: rid, capabilities: ["ack"] })
    expect(await r2.waitInbox(2)).toEqual(expected)
    expect(a.receipts).toEqual([])

    const ackReply = await r2.client.ack(hashes)
    expect([...(ackReply["messageHashes"] as string[])].sort()).toEqual([...hashes].sort())
    await waitUntil(() => a.receipts.length >= 2, "2 message_delivered receipts at the sender")
    expect(a.receipts.map((r) => r.messageHash).sort()).toEqual([...hashes].sort())
    for (const r of a.receipts) expect(typeof r.at).toBe("number")
    for (const f of a.framesOfType("message_delivered")) expect("requestId" in f).toBe(false)

    // acked: not delivered again
    r2.client.disconnect()
    await waitUntil(() => a.left.filter((k) => k === rid.publicKey).length >= 2, "peer_left(r2)")
    const r3 = await pool.connect(node.url, ALPHA, { identity: rid, capabilities: ["ack"] })
    await sleep(300)
    expect(r3.inbox).toEqual([])

    const h = await a.client.history(rid.publicKey)
    expect(h.messages.map((m) => m.messageHash)).toEqual([...hashes].reverse())
    for (const m of h.messages) expect(m.deliveryStatus).toBe("delivered")
  })

  test("presence: peer_joined for a key's first session, peer_left only when its last session closes", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const bid = makeIdentity()
    const b1 = await pool.connect(node.url, ALPHA, { identity: bid })
    await waitUntil(() => a.joined.includes(bid.publicKey), "peer_joined(b)")
    const b2 = await pool.connect(node.url, ALPHA, { identity: bid })
    // a second device: live messages reach both sessions
    const hash = randomHash()
    expect(await a.client.send(bid.publicKey, encryptedFor("to both"), hash)).toEqual({ messageHash: hash, l2psStatus: "submitted" })
    await b1.waitInbox(1)
    await b2.waitInbox(1)

    b1.client.disconnect()
    await sleep(300)
    expect(a.left).not.toContain(bid.publicKey)
    expect(a.joined.filter((k) => k === bid.publicKey).length).toBe(1)
    expect(await a.client.discover()).toContain(bid.publicKey)

    b2.client.disconnect()
    await waitUntil(() => a.left.includes(bid.publicKey), "peer_left(b)")
    expect(a.left.filter((k) => k === bid.publicKey).length).toBe(1)
    for (const f of a.framesOfType("peer_left")) expect("requestId" in f).toBe(false)
    expect(a.client.peers).not.toContain(bid.publicKey)
    expect(await a.client.discover()).not.toContain(bid.publicKey)
    expect(await a.client.requestPublicKey(bid.publicKey)).toBeNull()
  })

  test("network isolation: a peer in beta is invisible from alpha; a send to it is queued under alpha", async () => {
    const a = await pool.connect(node.url, ALPHA)
    const xid = makeIdentity()
    const x = await pool.connect(node.url, BETA, { identity: xid })
    expect(x.registered.l2psUid).toBe(BETA)
    expect(x.registered.onlinePeers).not.toContain(a.key)
    expect(await x.client.discover()).not.toContain(a.key)
    expect(await a.client.discover()).not.toContain(x.key)
    expect(await a.client.requestPublicKey(x.key)).toBeNull()
    expect(await x.client.requestPublicKey(a.key)).toBeNull()

    const enc = encryptedFor("cross")
    const hash = randomHash()
    expect(await a.client.send(x.key, enc, hash)).toEqual({ messageHash: hash, status: "queued" })
    await sleep(300)
    expect(x.inbox).toEqual([])
    expect(a.joined).not.toContain(x.key)
    expect(x.joined).not.toContain(a.key)
    expect((await x.client.history(a.key)).messages).toEqual([])

    // the same key joining alpha gets it there
    const xa = await pool.connect(node.url, ALPHA, { identity: xid })
    expect(await xa.waitInbox(1)).toEqual([{ from: a.key, encrypted: enc, messageHash: hash, offline: true }])
    await sleep(150)
    expect(x.inbox).toEqual([])
  })

  // Last: it restarts the node.
  test("the client reconnects and re-registers by itself; a message queued while it was away arrives after", async () => {
    const r = await pool.connect(node.url, ALPHA)
    const s = await pool.connect(node.url, ALPHA)
    const firstRegister = r.client.sentFrames.find((f) => f.frame.type === "register")!
    s.client.disconnect() // the sender comes back as a fresh client below

    // the server side closes the socket: stop the node, let the client's first two attempts (after 1 s
    // and 2 s more) fail
    const stoppedAt = Date.now()
    expect(await node.stop()).toBe(0)
    await waitUntil(() => !r.client.isConnected, "the client to see the drop", 2000)
    const attempts = () => r.states.filter((x) => x.at >= stoppedAt && x.state === "reconnecting").length
    await waitUntil(() => attempts() >= 2 && r.states.at(-1)!.state === "disconnected", "two failed reconnect attempts", 6000)
    // next attempt in 4 s: restart the node (same port, same data dir) and leave a message meanwhile
    node = await node.restart()
    expect(r.client.isRegistered).toBe(false)

    const s2 = await pool.connect(node.url, ALPHA, { identity: s.id })
    const enc = encryptedFor("while you were away")
    const hash = randomHash()
    expect(await s2.client.send(r.key, enc, hash)).toEqual({ messageHash: hash, status: "queued" })

    await waitUntil(() => r.client.isRegistered, "re-registration", 10000)
    expect(Date.now() - stoppedAt).toBeLessThan(15000)
    expect(r.client.socketsOpened).toBeGreaterThanOrEqual(2)
    const registers = r.client.sentFrames.filter((f) => f.frame.type === "register")
    expect(registers.length).toBeGreaterThanOrEqual(2)
    expect(registers.at(-1)!.frame.timestamp).toBeGreaterThan(firstRegister.frame.timestamp)

    const [msg] = await r.waitInbox(1)
    expect(msg).toEqual({ from: s.key, encrypted: enc, messageHash: hash, offline: true })
    const lastSocket = r.client.socketsOpened
    const onLast = r.client.rawFrames.filter((f) => f.socket === lastSocket).map((f) => (f.parsed as { type?: string }).type)
    expect(onLast.indexOf("registered")).toBeGreaterThanOrEqual(0)
    expect(onLast.indexOf("registered")).toBeLessThan(onLast.indexOf("message"))
    await waitUntil(() => s2.joined.includes(r.key), "peer_joined(r) at the sender")

    // and live traffic flows again
    const hash2 = randomHash()
    expect(await s2.client.send(r.key, encryptedFor("live again"), hash2)).toEqual({ messageHash: hash2, l2psStatus: "submitted" })
    await r.waitInbox(2)
    expect(r.inbox[1]).toMatchObject({ messageHash: hash2, offline: false })
  }, 25000)
})
