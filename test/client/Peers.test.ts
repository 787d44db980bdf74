/**
 * The client library against the node started as a user starts it, over real WebSockets: the L2PS
 * client (Promise and Effect APIs), the legacy client against the real SDK 2.9.1 `MessagingPeer`, and
 * a restart of the node that both clients survive by themselves.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Queue } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, type Identity, messageHashOf, openTextFrom, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import { MessagingPeer } from "../../src/client/MessagingPeer.ts"
import * as Home from "../../src/client/Home.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import { newMasterSeed } from "../../src/client/MlKemAes.ts"
import { verifyProof } from "../../src/client/Proofs.ts"
import type { ReconnectOptions } from "../../src/client/Reconnect.ts"
import type { ConnectionState, IncomingMessagePayload, ReceiptPayload } from "../../src/client/Wire.ts"
import { ensureSdk, SdkClient, type SdkEvent } from "../interop/SdkClient.ts"
import * as Gate from "../support/Gate.ts"
import { freePort, type NodeProcess, startNode } from "../support/NodeProcess.ts"

const T = 30_000
let node: NodeProcess
let legacyUrl: string
const cleanup: Array<() => unknown> = []

const legacyUrlOf = (n: NodeProcess): string => {
  const m = n.output().map((l) => /legacy ws:\/\/([^\s:,"]+):(\d+)/.exec(l)).find((x) => x !== null)
  if (!m) throw new Error(`no legacy URL in the node's output:\n${n.outputText()}`)
  return `ws://127.0.0.1:${m[2]}`
}

const waitUntil = async (check: () => boolean, what: string, ms = 8000) => {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timeout after ${ms} ms waiting for ${what}`)
    await Bun.sleep(10)
  }
}

interface Peer {
  readonly id: Identity
  readonly key: string
  readonly client: L2PSMessagingPeer
  readonly inbox: Array<IncomingMessagePayload>
  readonly receipts: Array<ReceiptPayload>
  readonly states: Array<ConnectionState>
  readonly joined: Array<string>
}

const peer = (options: { reconnect?: Partial<ReconnectOptions>; serverUrl?: string } = {}): Peer => {
  const id = generateIdentity()
  const client = new L2PSMessagingPeer({
    serverUrl: options.serverUrl ?? node.url,
    publicKey: id.publicKey,
    l2psUid: "default",
    signFn: signFnOf(id),
    autoAck: true,
    ...(options.reconnect === undefined ? {} : { reconnect: options.reconnect })
  })
  const p: Peer = { id, key: id.publicKey, client, inbox: [], receipts: [], states: [], joined: [] }
  client.onMessage((m) => p.inbox.push(m))
  client.onMessageDelivered((r) => p.receipts.push(r))
  client.onConnectionStateChange((s) => p.states.push(s))
  client.onPeerJoined((k) => p.joined.push(k))
  cleanup.push(() => client.dispose())
  return p
}

/** Clients kept away by a shut gate retry often, and never give up, so that the test decides when they are back. */
const away: Partial<ReconnectOptions> = { baseDelayMillis: 200, maxDelayMillis: 500, maxAttempts: 1000 }

/** A drop, attempts for as long as the gate was shut, then connected again. */
const droppedAndBack = (states: ReadonlyArray<ConnectionState>) => {
  expect(states[0]).toBe("disconnected")
  expect(states.at(-1)).toBe("connected")
  expect(new Set(states.slice(1, -1))).toEqual(new Set(["reconnecting"]))
}

const sealed = (from: Peer, to: Peer, text: string) => {
  const encrypted = sealFor(from.id, to.key, text)
  return { encrypted, messageHash: messageHashOf(from.key, to.key, encrypted, Date.now()) }
}

const textOf = (to: Peer, m: IncomingMessagePayload) => openTextFrom(to.id, m.from, m.encrypted)
const failure = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(() => undefined, (e: unknown) => (e instanceof Error ? e.message : String(e)))

beforeAll(async () => {
  ensureSdk()
  node = await startNode({
    env: {
      ADMIN_PORT: "0",
      REGISTRATION_BURST_PER_ADDRESS: "100000",
      L2PS_BATCH_INTERVAL_MS: "100",
      L1_BLOCK_INTERVAL_MS: "100",
      L1_FINALITY_DEPTH: "1",
      MAX_SESSIONS_PER_KEY: "2"
    },
    freePortEnv: ["SIGNALING_PORT"]
  })
  legacyUrl = legacyUrlOf(node)
}, T)

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  await node?.dispose()
})

describe("L2PSMessagingPeer against the node", () => {
  test("a live message, its receipt, history, and an inclusion proof checked offline; errors come back as the SDK's", async () => {
    const alice = peer()
    const bob = peer()
    expect((await alice.client.connect()).onlinePeers).toEqual([])
    expect((await bob.client.connect()).onlinePeers).toEqual([alice.key])
    await waitUntil(() => alice.joined.includes(bob.key), "peer_joined")
    expect(alice.client.isRegistered && alice.client.peers.includes(bob.key)).toBe(true)
    expect(await alice.client.requestPublicKey(bob.key)).toBe(bob.key)

    const m = sealed(alice, bob, "hello bob 🔐")
    expect(await alice.client.send(bob.key, m.encrypted, m.messageHash)).toEqual({ messageHash: m.messageHash, l2psStatus: "submitted" })
    await waitUntil(() => bob.inbox.length === 1, "bob's message")
    expect(bob.inbox[0]).toMatchObject({ from: alice.key, messageHash: m.messageHash, offline: false })
    expect(textOf(bob, bob.inbox[0]!)).toBe("hello bob 🔐")
    // bob acknowledged by himself (autoAck): alice gets the receipt
    await waitUntil(() => alice.receipts.some((r) => r.messageHash === m.messageHash), "message_delivered")

    const page = await alice.client.history(bob.key)
    const stored = page.messages.find((x) => x.messageHash === m.messageHash)!
    expect(stored.encrypted).toEqual(m.encrypted)
    let proof = await alice.client.proofRequest(m.messageHash)
    const until = Date.now() + 8000
    while (proof.batch?.status !== "confirmed" && Date.now() < until) {
      await Bun.sleep(100)
      proof = await alice.client.proofRequest(m.messageHash)
    }
    const known = { l2psUid: "default", messageHash: m.messageHash, encrypted: m.encrypted, timestamp: stored.timestamp }
    expect(verifyProof(proof, known)).toMatchObject({ valid: true, confirmed: true, status: "l2ps_confirmed" })
    expect(verifyProof(proof, { ...known, encrypted: sealed(alice, bob, "forged").encrypted }).valid).toBe(false)

    expect(await failure(alice.client.send(alice.key, m.encrypted, "x".repeat(64)))).toBe("Cannot send message to yourself")
    expect(await failure(alice.client.proofRequest("f".repeat(64)))).toBe("Message not found")
    // Another sender may use the same hash with bob: each proof names its sender, and bob picks with `from`.
    const mallory = peer()
    await mallory.client.connect()
    const copy = sealed(mallory, bob, "same hash")
    await mallory.client.send(bob.key, copy.encrypted, m.messageHash)
    await waitUntil(() => bob.inbox.length === 2, "mallory's message")
    const fromAlice = await bob.client.proofRequest(m.messageHash, alice.key)
    let fromMallory = await bob.client.proofRequest(m.messageHash, mallory.key)
    for (const until2 = Date.now() + 8000; fromMallory.batch === null && Date.now() < until2;) {
      await Bun.sleep(100)
      fromMallory = await bob.client.proofRequest(m.messageHash, mallory.key)
    }
    expect(fromAlice.leaf).toBe(proof.leaf)
    expect(fromMallory.leaf).not.toBe(proof.leaf)
    const mallorys = (await bob.client.history(mallory.key)).messages[0]!
    expect(verifyProof(fromMallory, { l2psUid: "default", messageHash: m.messageHash, encrypted: copy.encrypted, timestamp: mallorys.timestamp }))
      .toMatchObject({ valid: true })
    const idle = peer()
    expect(await failure(idle.client.send(bob.key, m.encrypted, m.messageHash))).toBe("Not registered. Call connect() first.")
    const nowhere = new L2PSMessagingPeer({
      serverUrl: `ws://127.0.0.1:${freePort()}`, publicKey: idle.key, l2psUid: "default", signFn: signFnOf(idle.id), timeouts: { connect: 1500 }
    })
    cleanup.push(() => nowhere.dispose())
    expect(await failure(nowhere.connect())).toBe("Connection timeout (1.5s)")
    const stranger = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: idle.key, l2psUid: "nope", signFn: signFnOf(idle.id) })
    cleanup.push(() => stranger.dispose())
    expect(await failure(stranger.connect())).toBe("L2PS network nope not found")
    alice.client.disconnect()
    bob.client.disconnect()
  }, T)

  test("a session evicted by newer ones of its key (4001) stays away instead of evicting them in turn", async () => {
    const id = generateIdentity()
    const device = () => {
      const client = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: id.publicKey, l2psUid: "default", signFn: signFnOf(id) })
      cleanup.push(() => client.dispose())
      return client
    }
    const [first, second, third] = [device(), device(), device()]
    const errors: Array<string> = []
    const states: Array<ConnectionState> = []
    first.onError((e) => errors.push(`${e.code}: ${e.message}`))
    first.onConnectionStateChange((s) => states.push(s))
    await first.connect()
    await second.connect()
    await third.connect()
    await waitUntil(() => errors.length > 0, "the eviction")
    expect(errors).toEqual(["EVICTED: Replaced by a newer session of the same key"])
    await Bun.sleep(100)
    expect(states).toEqual(["reconnecting", "connected", "disconnected"])
    expect(first.isConnected || !second.isRegistered || !third.isRegistered).toBe(false)
    expect(await failure(first.discover())).toBe("Not registered. Call connect() first.")
  }, T)

  test("Effect API (Messenger + Streams) and openMessenger: keys and history on disk, encrypted", async () => {
    const a = generateIdentity()
    const b = generateIdentity()
    const texts = await Effect.gen(function*() {
      const alice = yield* Messenger.make({ serverUrl: node.url, identity: a })
      const bob = yield* Messenger.make({ serverUrl: node.url, identity: b })
      const aliceEvents = yield* alice.subscribe
      const bobEvents = yield* bob.subscribe
      yield* alice.connect
      yield* bob.connect
      expect(yield* alice.onlinePeers).toContain(b.publicKey)
      const sent = yield* alice.send(b.publicKey, "via Effect")
      expect(sent.status).toBe("sent")
      const got = yield* Queue.take(bobEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Received" }))
      const receipt = yield* Queue.take(aliceEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Delivered" }))
      expect(receipt._tag === "Delivered" && receipt.record.messageHash).toBe(sent.messageHash)
      expect((yield* alice.conversation(b.publicKey)).map((r) => r.status)).toEqual(["delivered"])
      return got._tag === "Received" ? got.record.text : undefined
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(texts).toBe("via Effect")

    const home = (n: string) => fs.mkdtempSync(path.join(os.tmpdir(), `im-home-${n}-`))
    const [ha, hb] = [home("a"), home("b")]
    cleanup.push(() => [ha, hb].forEach((h) => fs.rmSync(h, { recursive: true, force: true })))
    const kdf = { N: 2 ** 14, r: 8, p: 1 }
    const alice = await Home.openMessenger({ serverUrl: node.url, home: ha, passphrase: "pa", kdf })
    const bob = await Home.openMessenger({ serverUrl: node.url, home: hb, passphrase: "pb", kdf })
    expect(alice.created && bob.created).toBe(true)
    const inbox: Array<string> = []
    bob.onMessage((r) => inbox.push(r.text))
    await alice.send(bob.publicKey, "on disk")
    await waitUntil(() => inbox.length === 1, "bob's message")
    await alice.close()
    await bob.close()
    expect(fs.readFileSync(path.join(hb, Home.HISTORY_FILE), "utf8")).not.toContain("on disk")
    const again = await Home.openMessenger({ serverUrl: node.url, home: hb, passphrase: "pb", kdf, connect: false })
    expect(again.created).toBe(false)
    expect(again.publicKey).toBe(bob.publicKey)
    expect((await again.conversation(alice.publicKey)).map((r) => [r.direction, r.text])).toEqual([["in", "on disk"]])
    await again.close()
    expect(await failure(Home.openMessenger({ serverUrl: node.url, home: hb, passphrase: "wrong", kdf }))).toContain("wrong passphrase")
  }, T)
})

const isMessage = (e: SdkEvent): e is Extract<SdkEvent, { event: "message" }> => e.event === "message"
const isQueued = (e: SdkEvent): e is Extract<SdkEvent, { event: "frame" }> => e.event === "frame" && e.frame.type === "message_queued"

describe("MessagingPeer (legacy) against the real SDK 2.9.1 client, through the node", () => {
  let ours: MessagingPeer
  let oursGate: Gate.Gate
  const oursInbox: Array<{ text: string; fromId: string }> = []
  const oursStates: Array<ConnectionState> = []

  test("both directions of ml-kem-aes over the wire; lookups; errors", async () => {
    const sdk = await SdkClient.create(legacyUrl, "sdk-bob")
    cleanup.push(() => sdk.close())
    await sdk.call("connect")
    oursGate = await Gate.create(Number(new URL(legacyUrl).port))
    cleanup.push(() => oursGate.close())
    ours = new MessagingPeer({ serverUrl: `ws://127.0.0.1:${oursGate.port}`, clientId: "ours-alice", masterSeed: newMasterSeed(), reconnect: away })
    cleanup.push(() => ours.dispose())
    ours.onMessage((m, fromId) => void (m instanceof Uint8Array && oursInbox.push({ text: new TextDecoder().decode(m), fromId })))
    ours.onConnectionStateChange((s) => oursStates.push(s))
    await ours.connect()
    expect(ours.isConnected).toBe(true)
    expect(await ours.discoverPeers()).toEqual(["sdk-bob", "ours-alice"])
    expect(Array.from(await ours.requestPublicKey("sdk-bob"))).toEqual(sdk.publicKey)

    await ours.sendMessage("sdk-bob", "hello SDK, from our client ✓")
    const got = await sdk.waitFor(isMessage)
    expect(got.fromId).toBe("ours-alice")
    expect(new TextDecoder().decode(new Uint8Array(got.bytes))).toBe("hello SDK, from our client ✓")

    await sdk.call("sendMessage", "ours-alice", "hello ours, from the SDK")
    await waitUntil(() => oursInbox.length === 1, "the SDK's message")
    expect(oursInbox[0]).toEqual({ text: "hello ours, from the SDK", fromId: "sdk-bob" })
    expect(await failure(ours.requestPublicKey("nobody"))).toBe("Target peer nobody not found")
    // the next request still gets its own reply
    expect(await ours.discoverPeers()).toContain("sdk-bob")
  }, T)

  test("a node restart: both clients reconnect and register again by themselves, then get what was sent meanwhile", async () => {
    // alice reconnects on the SDK's schedule (1 s first); bob and our legacy client reach the node
    // through gates the test keeps shut until carol and the SDK have left them messages, however long
    // the restart takes.
    const bobGate = await Gate.create(node.port)
    cleanup.push(() => bobGate.close())
    const alice = peer()
    const bob = peer({ reconnect: away, serverUrl: `ws://127.0.0.1:${bobGate.port}` })
    const carol = peer()
    await alice.client.connect()
    await bob.client.connect()
    const dave = await SdkClient.create(legacyUrl, "sdk-dave")
    cleanup.push(() => dave.close())
    bob.states.length = 0
    oursStates.length = 0

    await node.stop()
    bobGate.shut()
    oursGate.shut()
    await waitUntil(() => bob.states.includes("reconnecting") && oursStates.includes("reconnecting"), "the drop to be seen")
    expect(alice.client.isRegistered || bob.client.isRegistered).toBe(false)
    // asked while the node is down: waits for alice's re-registration, then goes out
    const early = sealed(alice, bob, "sent while the node was down")
    const pending = alice.client.send(bob.key, early.encrypted, early.messageHash)

    node = await node.restart()
    await carol.client.connect()
    const late = sealed(carol, bob, "left while you were away")
    expect(await carol.client.send(bob.key, late.encrypted, late.messageHash)).toEqual({ messageHash: late.messageHash, status: "queued" })
    await dave.call("connect")
    await dave.call("sendMessage", "ours-alice", "legacy, while you were away")
    await dave.waitFor(isQueued)
    bobGate.open()
    oursGate.open()

    expect((await pending).messageHash).toBe(early.messageHash)
    await waitUntil(() => bob.client.isRegistered && bob.inbox.length === 2, "bob back with both messages", 20_000)
    droppedAndBack(bob.states)
    // bob came back after carol registered: she hears him join.
    await waitUntil(() => carol.joined.includes(bob.key), "carol hears bob join")
    const byHash = new Map(bob.inbox.map((m) => [m.messageHash, m]))
    expect(byHash.get(late.messageHash)?.offline).toBe(true)
    expect(textOf(bob, byHash.get(late.messageHash)!)).toBe("left while you were away")
    expect(textOf(bob, byHash.get(early.messageHash)!)).toBe("sent while the node was down")
    await waitUntil(() => carol.receipts.some((r) => r.messageHash === late.messageHash), "carol's receipt")
    expect(alice.states.slice(-1)).toEqual(["connected"])

    await waitUntil(() => oursInbox.length === 2, "our legacy client's offline message", 20_000)
    expect(oursInbox[1]).toEqual({ text: "legacy, while you were away", fromId: "sdk-dave" })
    droppedAndBack(oursStates)
    expect(await ours.discoverPeers()).toEqual(expect.arrayContaining(["ours-alice", "sdk-dave"]))
  }, T)
})
