/**
 * Wire compatibility with the real published legacy client: `MessagingPeer` of
 * @kynesyslabs/demosdk@2.9.1 (installed by setup-sdk.sh), each client in its own worker, against the
 * node started as a user starts it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"
import { ensureSdk, SdkClient, type SdkEvent } from "./SdkClient.ts"

const TIMEOUT = 60_000
const LEGACY_URL = /legacy ws:\/\/([^\s:,"]+):(\d+)/

const legacyUrlOf = (node: NodeProcess): string => {
  const m = node.output().map((l) => LEGACY_URL.exec(l)).find((x) => x !== null)
  if (!m) throw new Error(`no legacy URL in the node's output:\n${node.outputText()}`)
  const host = m[1] === "0.0.0.0" || m[1] === "::" ? "127.0.0.1" : m[1]
  return `ws://${host}:${m[2]}`
}

const isFrame = (type: string) => (e: SdkEvent): e is Extract<SdkEvent, { event: "frame" }> =>
  e.event === "frame" && e.frame.type === type
const isMessage = (e: SdkEvent): e is Extract<SdkEvent, { event: "message" }> => e.event === "message"
const isGone = (peerId: string) => (e: SdkEvent): e is Extract<SdkEvent, { event: "peer_disconnected" }> =>
  e.event === "peer_disconnected" && e.peerId === peerId

/** The rejection message (bun's `expect(p).rejects` waits forever on promises settled from a Worker). */
const failure = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(() => undefined, (e: unknown) => (e instanceof Error ? e.message : String(e)))

let node: NodeProcess
let url: string
const clients: Array<SdkClient> = []
const client = async (clientId: string, seedName?: string) => {
  const c = await SdkClient.create(url, clientId, seedName)
  clients.push(c)
  return c
}

beforeAll(async () => {
  ensureSdk()
  node = await startNode({ freePortEnv: ["SIGNALING_PORT"] })
  url = legacyUrlOf(node)
}, TIMEOUT)

afterAll(async () => {
  for (const c of clients) await c.close()
  await node?.dispose()
})

describe("MessagingPeer (@kynesyslabs/demosdk 2.9.1) against the legacy server", () => {
  test("the node announces the legacy server beside the L2PS one", () => {
    const line = node.output().find((l) => l.includes("listening"))!
    expect(line).toMatch(/listening: l2ps ws:\/\/[^\s:]+:\d+, legacy ws:\/\/[^\s:]+:\d+, storage /)
    expect(url).toEndWith(`:${node.env["SIGNALING_PORT"]}`)
  })

  test("two clients register, discover each other, exchange an encrypted message, request a key", async () => {
    const alice = await client("alice")
    const bob = await client("bob")
    await alice.call("connect")
    await bob.call("connect")
    expect(await alice.call("discover")).toEqual(["alice", "bob"])
    expect(await bob.call("discover")).toEqual(["alice", "bob"])
    expect(await alice.call("requestPublicKey", "bob")).toEqual(bob.publicKey)

    const text = "héllo bob, ✓ post-quantum 🔐"
    const before = alice.events.length
    await alice.call("sendMessage", "bob", text)
    const got = await bob.waitFor(isMessage)
    expect(got.fromId).toBe("alice")
    expect(got.bytes).toEqual(Array.from(new TextEncoder().encode(text)))
    // And back, through the key the server hands out.
    await bob.call("sendMessage", "alice", "hi alice")
    const back = await alice.waitFor(isMessage)
    expect(new TextDecoder().decode(new Uint8Array(back.bytes))).toBe("hi alice")
    // No acknowledgement ever reached a sender: only the reply to its own key request.
    expect(alice.events.slice(before).filter((e) => e.event === "frame").map((e: any) => e.frame.type))
      .toEqual(["public_key_response"])
    // The client still waits correctly after all that (the next frame is its reply).
    expect(await bob.call("requestPublicKey", "alice")).toEqual(alice.publicKey)
  }, TIMEOUT)

  test("a debug question round trip: server_question, then peer_response accepted silently", async () => {
    const alice = clients.find((c) => c.clientId === "alice")!
    const q = await alice.call("ask", "debug_question", {}, "server_question")
    expect(q.question.text).toContain("favorite programming language")
    await alice.waitFor((e): e is Extract<SdkEvent, { event: "server_question" }> => e.event === "server_question")
    await alice.call("respond", q.questionId, "TypeScript")
    expect(await alice.call("discover")).toEqual(["alice", "bob"])
  }, TIMEOUT)

  test("a third client sees peer_disconnected when one leaves", async () => {
    const carol = await client("carol")
    await carol.call("connect")
    const bob = clients.find((c) => c.clientId === "bob")!
    await bob.call("disconnect")
    const alice = clients.find((c) => c.clientId === "alice")!
    await carol.waitFor(isGone("bob"))
    await alice.waitFor(isGone("bob"))
    expect(await carol.call("discover")).toEqual(["alice", "carol"])
  }, TIMEOUT)

  test("unregistered requests and a register without proof get their errors", async () => {
    const dave = await client("dave")
    await dave.call("open")
    expect(await failure(dave.call("discover"))).toBe("You must register before discovering peers")
    expect(dave.frames("error").map((f) => f.payload.errorType)).toEqual(["REGISTRATION_REQUIRED"])
    expect(await failure(dave.call("requestPublicKey", "alice"))).toBe("You must register before requesting public keys")
    // register() sends no verification: exactly one error frame (the reference sends two).
    await dave.call("register")
    await dave.waitFor(isFrame("error"), 5000, 2)
    await Bun.sleep(200)
    expect(dave.frames("error").map((f) => [f.payload.errorType, f.payload.details])).toEqual([
      ["REGISTRATION_REQUIRED", "You must register before discovering peers"],
      ["REGISTRATION_REQUIRED", "You must register before requesting public keys"],
      ["INVALID_MESSAGE", "Invalid message schema"]
    ])
    expect(dave.frames("error").every((f) => !Number.isNaN(Date.parse(f.payload.timestamp)))).toBe(true)
  }, TIMEOUT)

  test("a duplicate clientId with another key is CLIENT_ID_TAKEN, online and offline", async () => {
    const impostor = await client("alice", "mallory")
    expect(await failure(impostor.call("connect"))).toBe("Client ID alice is already taken")
    expect(impostor.frames("error").map((f) => f.payload.errorType)).toEqual(["CLIENT_ID_TAKEN"])
    // bob is offline, and his id is still his.
    const thief = await client("bob", "mallory")
    expect(await failure(thief.call("connect"))).toBe("Client ID bob is already taken")
  }, TIMEOUT)

  test("a message left for an offline client is delivered on its next registration, across a restart", async () => {
    const alice = clients.find((c) => c.clientId === "alice")!
    // The server hands out the offline owner's stored key, so the real client can encrypt to it.
    const bobKey = clients.find((c) => c.clientId === "bob")!.publicKey
    expect(await alice.call("requestPublicKey", "bob")).toEqual(bobKey)
    const from = alice.events.length
    await alice.call("sendMessage", "bob", "while you were away")
    const queued = await alice.waitFor(isFrame("message_queued"), 10_000, from)
    expect(queued.frame.payload).toEqual({ targetId: "bob", status: "offline", message: "Message stored for offline delivery" })

    for (const c of clients.splice(0)) await c.close()
    node = await node.restart()
    url = legacyUrlOf(node)

    const bob = await client("bob")
    await bob.call("connect")
    const got = await bob.waitFor(isMessage)
    expect(got.fromId).toBe("alice")
    expect(new TextDecoder().decode(new Uint8Array(got.bytes))).toBe("while you were away")
    // Delivered once: a later registration gets nothing more.
    await bob.call("disconnect")
    const again = await client("bob")
    await again.call("connect")
    await Bun.sleep(300)
    expect(again.events.filter(isMessage)).toEqual([])
  }, TIMEOUT)
})
