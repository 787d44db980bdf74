/**
 * Secure sessions through a real node with real `openMessenger` clients: bundles published on
 * registration, a recipient that has been offline since it published, several devices of one account,
 * a removed device, the pools refilled by the client, and today's scheme for peers without a bundle.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import * as Home from "../../src/client/Home.ts"
import * as HomeStorage from "../../src/client/HomeStorage.ts"
import { generateIdentity, openMessage, sealBound, signFnOf } from "../../src/client/L2psCrypto.ts"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { openWith } from "../../src/client/OpenMessenger.ts"
import * as Envelope from "../../src/client/secure/Envelope.ts"
import * as Parcel from "../../src/client/secure/Parcel.ts"
import { SECURE_NONCE } from "../../src/client/SecureLink.ts"
import { SECURE_FILE } from "../../src/client/SecureState.ts"
import type { IncomingMessagePayload } from "../../src/client/Wire.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { startE2eNode, waitUntil } from "./helpers.ts"

const T = 60_000
const kdf = { N: 2 ** 14, r: 8, p: 1 }
let node: NodeProcess
const dirs: Array<string> = []
const handles: Array<{ close(): Promise<void> }> = []

const home = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "im-secure-"))
  dirs.push(d)
  return d
}

const open = async (dir: string, passphrase: string, extra: Partial<Home.OpenOptions> = {}) => {
  const m = await Home.openMessenger({ serverUrl: node.url, home: dir, passphrase, kdf, ...extra, connect: false })
  handles.push(m)
  const l = seen(m)
  m.onEvent((e) => {
    if (e._tag === "Received") l.received.push({ text: e.record.text })
    if (e._tag === "Undecryptable") l.undecryptable.push({ reason: e.reason })
    if (e._tag === "Sent") l.sent.push(e.otherDevice === true ? `other device: ${e.record.text}` : e.record.text)
  })
  await m.connect()
  return m
}

beforeAll(async () => {
  node = await startE2eNode({ BUNDLE_FETCH_BURST: "1000", BUNDLE_FETCH_BURST_PER_ADDRESS: "1000" })
}, T)

afterAll(async () => {
  for (const h of handles) await h.close().catch(() => undefined)
  await node?.stop()
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

describe("secure sessions in the messenger", () => {
  test("non-interactive: B publishes and goes away; A's three messages open, in order, when B comes back", async () => {
    const ha = home()
    const hb = home()
    const bob = await open(hb, "pb")
    await bob.maintainPrekeys()
    expect((await bob.devices()).map((d) => Number(d.deviceId))).toEqual([bob.deviceId!])
    const bobKey = bob.publicKey
    await bob.close()

    const alice = await open(ha, "pa")
    const sent = []
    for (const text of ["one", "two", "three"]) sent.push(await alice.send(bobKey, text))
    for (const r of sent) {
      expect(r.status).toBe("queued")
      // A parcel, not today's scheme: no ephemeral key, and the first byte is the parcel's version.
      expect(r.encrypted?.nonce).toBe(SECURE_NONCE)
      expect(r.encrypted?.ephemeralKey).toBeUndefined()
      expect(Buffer.from(r.encrypted!.ciphertext, "base64")[0]).toBe(0x02)
    }

    const back = await open(hb, "pb")
    expect(back.deviceId).toBe(bob.deviceId) // chosen once and kept
    await waitUntil(() => received(back).length === 3, "three messages", 10_000)
    const got = await back.conversation(alice.publicKey)
    expect(got.filter((r) => r.direction === "in").map((r) => [r.text, r.status])).toEqual([["one", "received"], ["two", "received"], ["three", "received"]])
    // The reply goes back on the session B's first message started.
    await back.send(alice.publicKey, "got them")
    await waitUntil(() => received(alice).some((r) => r.text === "got them"), "the reply", 10_000)
    expect(alice.safetyNumber(bobKey)).toBe(back.safetyNumber(alice.publicKey))
    expect(alice.safetyNumber(bobKey)).toMatch(/^(\d{5} ){11}\d{5}$/)
  }, T)

  test("several devices: A's message opens on both of B's; a removed device gets nothing new", async () => {
    const ha = home()
    const hb1 = home()
    const hb2 = home()
    const b1 = await open(hb1, "pb")
    await b1.maintainPrekeys()
    // The second device: the same account (its identity file), its own device and sessions.
    fs.copyFileSync(path.join(hb1, "identity.json"), path.join(hb2, "identity.json"))
    const b2 = await open(hb2, "pb")
    await b2.maintainPrekeys()
    expect(b2.publicKey).toBe(b1.publicKey)
    expect(b2.deviceId).not.toBe(b1.deviceId)
    expect((await b1.devices()).map((d) => Number(d.deviceId)).sort()).toEqual([b1.deviceId!, b2.deviceId!].sort())

    const alice = await open(ha, "pa", { secureOptions: { deviceListTtlMs: 0 } })
    await alice.send(b1.publicKey, "to both")
    await waitUntil(() => received(b1).some((r) => r.text === "to both") && received(b2).some((r) => r.text === "to both"), "both devices", 10_000)

    // B's reply from one device shows on the other live: the node copies it there, its parcel has a part for it.
    await b1.send(alice.publicKey, "reply from b1")
    await waitUntil(() => received(alice).some((r) => r.text === "reply from b1"), "the reply", 10_000)
    // b2 sent nothing itself: its only `Sent` is the copy.
    await waitUntil(() => sentEvents(b2).includes("other device: reply from b1"), "the copy on b2", 10_000)
    // A's delivery receipt reaches every device of B's, so the copy moves on from sent to delivered.
    const outOnB2 = async () => (await b2.conversation(alice.publicKey)).filter((r) => r.direction === "out").map((r) => [r.text, r.status])
    let onB2 = await outOnB2()
    expect(onB2).toHaveLength(1)
    expect(["sent", "delivered"]).toContain(onB2[0]![1]!)
    const deadline = Date.now() + 10_000
    while (onB2[0]![1] !== "delivered" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50))
      onB2 = await outOnB2()
    }
    expect(onB2).toEqual([["reply from b1", "delivered"]])
    // Shown as sent, not received; history holds nothing more.
    expect(received(b2).map((r) => r.text)).toEqual(["to both"])
    expect(sentEvents(b2)).toEqual(["other device: reply from b1"])
    expect(sentEvents(b1)).toContain("reply from b1")
    expect(sentEvents(b1).filter((t) => t.startsWith("other device"))).toEqual([])
    expect((await b2.refresh(alice.publicKey)).filter((r) => r.direction === "out")).toHaveLength(1)

    expect(await b1.removeDevice(b2.deviceId!)).toBe(true)
    await alice.send(b1.publicKey, "after removal")
    await waitUntil(() => received(b1).some((r) => r.text === "after removal"), "the kept device", 10_000)
    // b2 is still connected under the account's key, so the node delivers the parcel: no part is for it.
    await waitUntil(() => undecryptable(b2).length === 1, "the removed device's copy", 10_000)
    expect(received(b2).map((r) => r.text)).toEqual(["to both"])
    expect(undecryptable(b2)[0]!.reason).toContain("not sealed for this device")
  }, T)

  test("the one-time pools are refilled by the client when the node holds fewer than 10", async () => {
    const bob = await open(home(), "pb")
    await bob.maintainPrekeys()
    const before = (await bob.devices())[0]!
    expect([before.oneTimePreKeys, before.oneTimeKems]).toEqual([100, 25])
    // Each first message to B takes one key of each kind: 16 senders leave 9 ML-KEM keys.
    for (let i = 0; i < 16; i++) {
      const a = await open(home(), `pa${i}`)
      await a.send(bob.publicKey, `hello ${i}`)
      await a.close()
    }
    const drained = (await bob.devices())[0]!
    expect([drained.oneTimePreKeys, drained.oneTimeKems]).toEqual([84, 9])
    await waitUntil(() => received(bob).length === 16, "every first message", 15_000)
    await bob.maintainPrekeys()
    const after = (await bob.devices())[0]!
    expect([after.oneTimePreKeys, after.oneTimeKems]).toEqual([84, 25])
  }, T)

  test("crash between delivery and storage: the message comes again and opens; a restarted sender uses no key twice", async () => {
    const files = new Map<string, string>()
    let killed = false
    const plain = HomeStorage.memory(files)
    // The history write never finishes: the process is as good as killed between delivery and storage.
    const dying: HomeStorage.HomeStorage = { ...plain, append: (name, text) => (killed ? Effect.never : plain.append(name, text)) }
    const withEvents = async (storage: HomeStorage.HomeStorage, passphrase: string) => {
      const m = await openWith(storage, { serverUrl: node.url, passphrase, kdf, connect: false })
      handles.push(m)
      const l = seen(m)
      m.onEvent((e) => void (e._tag === "Received" && l.received.push({ text: e.record.text })))
      await m.connect()
      return m
    }
    const bob = await withEvents(dying, "pb")
    await bob.maintainPrekeys()
    const aliceFiles = new Map<string, string>()
    const alice = await withEvents(HomeStorage.memory(aliceFiles), "pa")
    const secureBefore = files.get(SECURE_FILE)
    killed = true
    const first = await alice.send(bob.publicKey, "before the crash")
    await Bun.sleep(500)
    expect(received(bob)).toHaveLength(0)
    // Nothing of the message reached the states: they are as before it.
    expect(files.get(SECURE_FILE)).toBe(secureBefore)
    await bob.close()
    killed = false

    // The sender restarts too, from its files: its next message must not reuse a message key.
    await alice.close()
    const alice2 = await withEvents(HomeStorage.memory(aliceFiles), "pa")
    const second = await alice2.send(bob.publicKey, "after the restart")

    const bob2 = await withEvents(plain, "pb")
    await waitUntil(() => received(bob2).length === 2, "both messages", 10_000)
    expect(received(bob2).map((r) => r.text).sort()).toEqual(["after the restart", "before the crash"])
    const keyOf = (r: typeof first) => {
      const part = Parcel.decodeParcel(Buffer.from(r.encrypted!.ciphertext, "base64")).find((p) => p.deviceId === bob2.deviceId)!
      const h = Envelope.decodeEnvelope(part.envelope).header
      return `${Buffer.from(h.dh).toString("hex")}/${h.n}`
    }
    expect(keyOf(second)).not.toBe(keyOf(first))
    // Opened again after the restart, and stored: the states moved on (the file changed).
    expect(files.get(SECURE_FILE)).not.toBe(secureBefore)
  }, T)

  test("a peer without a bundle (the SDK's client) gets today's scheme, and its messages still open", async () => {
    const alice = await open(home(), "pa")
    const id = generateIdentity()
    const sdk = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: id.publicKey, l2psUid: "default", signFn: signFnOf(id) })
    const inbox: Array<IncomingMessagePayload> = []
    sdk.onMessage((m) => void inbox.push(m))
    await sdk.connect()
    try {
      const r = await alice.send(id.publicKey, "old scheme")
      expect(r.encrypted?.ephemeralKey).toBeDefined()
      await waitUntil(() => inbox.length === 1, "the SDK peer's message", 10_000)
      expect(openMessage(id, alice.publicKey, inbox[0]!.encrypted, inbox[0]!.messageHash)).toMatchObject({ _tag: "Bound", text: "old scheme" })

      // A second SDK session of the same key never asked for copies: it sees nothing of what the first sends.
      const other = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: id.publicKey, l2psUid: "default", signFn: signFnOf(id) })
      const otherInbox: Array<IncomingMessagePayload> = []
      other.onMessage((m) => void otherInbox.push(m))
      await other.connect()
      try {
        const old = sealBound(id, alice.publicKey, "from an old client", Date.now())
        await sdk.send(alice.publicKey, old.encrypted, old.messageHash)
        await waitUntil(() => received(alice).some((m) => m.text === "from an old client"), "the old-scheme message", 10_000)
        await new Promise((r) => setTimeout(r, 300))
        expect(otherInbox).toEqual([])
        expect(inbox).toHaveLength(1)
      } finally {
        await other.dispose()
      }
    } finally {
      await sdk.dispose()
    }
  }, T)
})

// What each handle received, from its events.
const log = new WeakMap<object, { received: Array<{ text: string }>; undecryptable: Array<{ reason: string }>; sent: Array<string> }>()
const seen = (h: Home.MessengerHandle) => {
  let l = log.get(h)
  if (l === undefined) {
    const entry = { received: [] as Array<{ text: string }>, undecryptable: [] as Array<{ reason: string }>, sent: [] as Array<string> }
    log.set(h, entry)
    l = entry
  }
  return l
}
const received = (h: Home.MessengerHandle) => seen(h).received
const undecryptable = (h: Home.MessengerHandle) => seen(h).undecryptable
/** Its `Sent` events: what it sent, and what this account's other devices sent. */
const sentEvents = (h: Home.MessengerHandle) => seen(h).sent
