/**
 * End to end: prekey bundles over real WebSockets against the node started as a user starts it. A device
 * publishes, a stranger fetches (each one-time key served once, then the last-resort key), forged and
 * misshapen keys are refused, pools and devices are bounded, a fetcher past its bucket is refused, and
 * a removed device is no longer served.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test"
import { ed25519, x25519 } from "@noble/curves/ed25519.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { type PrekeyKind, prekeySigningString } from "../../src/domain/Prekeys.ts"
import { freePort, type NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import {
  ask,
  expectAlive,
  expectError,
  type Identity,
  makeIdentity,
  newRequestId,
  registerRaw,
  requestFrame,
  startE2eNode,
} from "./helpers.ts"

const UID = "default"
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const encoder = new TextEncoder()

interface Key {
  readonly keyId: number
  readonly publicKey: string
  readonly signature: string
}

/** One device of an account: real X25519 and ML-KEM-768 public keys, signed by the account key. */
const device = (account: Identity, deviceId: number, registrationId: number, signer: Identity = account) => {
  const sign = (kind: PrekeyKind, keyId: number, publicKey: string, regId = registrationId, kindSigned = kind): Key => ({
    keyId,
    publicKey,
    signature: signer.signFn(prekeySigningString(kindSigned, deviceId, regId, keyId, publicKey)),
  })
  const x = () => hex(x25519.getPublicKey(x25519.utils.randomSecretKey()))
  const kem = () => hex(ml_kem768.keygen().publicKey)
  return {
    deviceId,
    registrationId,
    sign,
    spk: (keyId: number) => sign("spk", keyId, x()),
    lrk: (keyId: number) => sign("lrk", keyId, kem()),
    opk: (keyId: number) => sign("opk", keyId, x()),
    okem: (keyId: number) => sign("okem", keyId, kem()),
  }
}
type Device = ReturnType<typeof device>

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i)

/** A bundle's signatures, checked as a client does: by the account key over the agreed string. */
const signedBy = (accountKey: string, deviceId: number, registrationId: number, kind: PrekeyKind, k: Key): boolean =>
  ed25519.verify(
    Buffer.from(k.signature, "hex"),
    encoder.encode(prekeySigningString(kind, deviceId, registrationId, k.keyId, k.publicKey)),
    Buffer.from(accountKey, "hex"),
  )

describe("prekey bundles", () => {
  let node: NodeProcess
  let admin: string
  const open: RawSocket.RawSocket[] = []

  beforeAll(async () => {
    const adminPort = String(freePort())
    node = await startE2eNode({
      ADMIN_PORT: adminPort,
      MAX_SESSIONS_PER_KEY: "3",
      BUNDLE_FETCH_BURST: "6",
      BUNDLE_FETCH_PER_MINUTE: "1",
      // every socket here comes from 127.0.0.1: the tests before the last take fewer than 40 in all
      BUNDLE_FETCH_BURST_PER_ADDRESS: "40",
      BUNDLE_FETCH_PER_MINUTE_PER_ADDRESS: "1",
    })
    admin = `http://127.0.0.1:${adminPort}`
  }, 60000)
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
  })
  afterAll(async () => {
    await node?.dispose()
  })

  /** A registered socket of a fresh (or given) identity. */
  const session = async (id: Identity = makeIdentity()) => {
    const sock = await RawSocket.open(node.url)
    open.push(sock)
    await registerRaw(sock, id, UID)
    const request = async (type: string, payload: unknown) => {
      const requestId = newRequestId()
      const reply = await ask(sock, requestFrame(type, payload, requestId), 10000)
      expect(reply.requestId).toBe(requestId)
      return reply
    }
    const publish = (d: Device, keys: { spk?: Key; lrk?: Key; opks?: Key[]; kems?: Key[] }) =>
      request("prekeys_publish", {
        deviceId: d.deviceId,
        registrationId: d.registrationId,
        ...(keys.spk ? { signedPreKey: keys.spk } : {}),
        ...(keys.lrk ? { lastResortKem: keys.lrk } : {}),
        ...(keys.opks ? { oneTimePreKeys: keys.opks } : {}),
        ...(keys.kems ? { oneTimeKems: keys.kems } : {}),
      })
    return { id, key: id.publicKey, sock, request, publish, fetch: (publicKey: string) => request("bundle_fetch", { publicKey }) }
  }

  const metric = async (line: string): Promise<number> => {
    const text = await (await fetch(`${admin}/metrics`)).text()
    const found = text.split("\n").find((l) => l.startsWith(`${line} `))
    return found === undefined ? Number.NaN : Number(found.slice(line.length + 1))
  }

  test("a device publishes; a stranger's fetches take its one-time keys one by one, then get the last-resort key", async () => {
    const alice = await session()
    const bob = await session()
    const d = device(alice.id, 1, 4242)
    const spk = d.spk(1)
    const lrk = d.lrk(1)
    const opks = [d.opk(10), d.opk(11)]
    const kems = [d.okem(20)]
    const published = await alice.publish(d, { spk, lrk, opks, kems })
    expect({ type: published.type, payload: published.payload }).toEqual({
      type: "prekeys_published",
      payload: { deviceId: 1, oneTimePreKeys: 2, oneTimeKems: 1 },
    })
    const servedBefore = await metric(`im_one_time_prekeys_served_total{kind="opk"}`)
    const fallbacksBefore = await metric("im_prekey_last_resort_total")

    const first = await bob.fetch(alice.key.toUpperCase())
    expect(first.type).toBe("bundle_response")
    expect(first.payload).toEqual({
      publicKey: alice.key,
      devices: [{ deviceId: 1, registrationId: 4242, signedPreKey: spk, lastResortKem: lrk, oneTimePreKey: opks[0], oneTimeKem: kems[0] }],
    })
    const b = first.payload.devices[0]
    expect(signedBy(alice.key, 1, 4242, "spk", b.signedPreKey)).toBe(true)
    expect(signedBy(alice.key, 1, 4242, "lrk", b.lastResortKem)).toBe(true)
    expect(signedBy(alice.key, 1, 4242, "opk", b.oneTimePreKey)).toBe(true)
    expect(signedBy(alice.key, 1, 4242, "okem", b.oneTimeKem)).toBe(true)

    // the served keys are gone: the next fetch gets the next X25519 key and no one-time ML-KEM key
    const second = await bob.fetch(alice.key)
    expect(second.payload.devices).toEqual([{ deviceId: 1, registrationId: 4242, signedPreKey: spk, lastResortKem: lrk, oneTimePreKey: opks[1] }])
    const third = await bob.fetch(alice.key)
    expect(third.payload.devices).toEqual([{ deviceId: 1, registrationId: 4242, signedPreKey: spk, lastResortKem: lrk }])

    const count = await alice.request("prekeys_count", { deviceId: 1 })
    expect({ type: count.type, payload: count.payload }).toEqual({
      type: "prekeys_count_response",
      payload: { deviceId: 1, oneTimePreKeys: 0, oneTimeKems: 0 },
    })
    const list = await alice.request("devices", {})
    expect(list.type).toBe("devices_response")
    expect(list.payload.devices).toMatchObject([{ deviceId: 1, registrationId: 4242, oneTimePreKeys: 0, oneTimeKems: 0 }])
    expect(await metric(`im_one_time_prekeys_served_total{kind="opk"}`)).toBe(servedBefore + 2)
    expect(await metric("im_prekey_last_resort_total")).toBe(fallbacksBefore + 2)

    // a key that published nothing has no devices; a refill lands in the pool again
    expect((await bob.fetch(bob.key)).payload).toEqual({ publicKey: bob.key, devices: [] })
    expect((await alice.publish(d, { opks: [d.opk(12)] })).payload).toEqual({ deviceId: 1, oneTimePreKeys: 1, oneTimeKems: 0 })
    expect((await bob.fetch(alice.key)).payload.devices[0].oneTimePreKey.keyId).toBe(12)
  }, 30000)

  test("only registered sessions use prekeys, and only for their own key", async () => {
    const sock = await RawSocket.open(node.url)
    open.push(sock)
    const alice = makeIdentity()
    const cases: Array<[string, unknown, string]> = [
      ["prekeys_publish", { deviceId: 1, registrationId: 1 }, "Register before publishing prekeys"],
      ["prekeys_count", { deviceId: 1 }, "Register before counting prekeys"],
      ["bundle_fetch", { publicKey: alice.publicKey }, "Register before fetching bundles"],
      ["devices", {}, "Register before listing devices"],
      ["device_remove", { deviceId: 1 }, "Register before removing devices"],
    ]
    for (const [type, payload, message] of cases) {
      const requestId = newRequestId()
      expectError(await ask(sock, requestFrame(type, payload, requestId)), "REGISTRATION_REQUIRED", message, requestId)
    }
    await expectAlive(sock, false)

    // mallory's publish, whatever it says, is mallory's: alice's bundle stays empty
    const mallory = await session()
    const forAlice = device(alice, 1, 1, mallory.id)
    expect((await mallory.publish(forAlice, { spk: forAlice.spk(1), lrk: forAlice.lrk(1) })).type).toBe("prekeys_published")
    const bob = await session()
    expect((await bob.fetch(alice.publicKey)).payload.devices).toEqual([])
    expect((await bob.fetch(mallory.key)).payload.devices.length).toBe(1)
    // and mallory cannot remove another key's device: `device_remove` names only a device id of its own key
    const aliceSession = await session(alice)
    const own = device(alice, 1, 1)
    await aliceSession.publish(own, { spk: own.spk(1), lrk: own.lrk(1) })
    await mallory.request("device_remove", { deviceId: 1 })
    expect((await bob.fetch(alice.publicKey)).payload.devices.length).toBe(1)
    const missing = await mallory.request("prekeys_count", { deviceId: 1 })
    expectError(missing, "DEVICE_NOT_FOUND", "No prekeys published for device 1", missing.requestId as string)
  }, 30000)

  test("a signature that does not verify refuses the whole upload: forged, of another kind, device or installation", async () => {
    const alice = await session()
    const mallory = makeIdentity()
    const d = device(alice.id, 1, 77)
    const spk = d.spk(1)
    const lrk = d.lrk(1)
    const forged = device(alice.id, 1, 77, mallory)
    const x = d.opk(5).publicKey
    const refusals: Array<[{ spk?: Key; lrk?: Key; opks?: Key[]; kems?: Key[] }, string]> = [
      [{ spk: forged.spk(1), lrk }, "The signed prekey 1 is not signed by this key"],
      [{ spk, lrk: forged.lrk(2) }, "The last-resort ML-KEM key 2 is not signed by this key"],
      [{ spk, lrk, opks: [d.opk(1), forged.opk(2)] }, "The one-time X25519 prekey 2 is not signed by this key"],
      // an opk's signature presented as the signed prekey
      [{ spk: d.sign("spk", 3, x, 77, "opk"), lrk }, "The signed prekey 3 is not signed by this key"],
      // signed for another installation of the device
      [{ spk, lrk, kems: [d.sign("okem", 4, d.okem(4).publicKey, 78)] }, "The one-time ML-KEM key 4 is not signed by this key"],
    ]
    for (const [keys, message] of refusals) {
      const reply = await alice.publish(d, keys)
      expectError(reply, "INVALID_SIGNATURE", message, reply.requestId as string)
    }
    // signed for device 1, presented for device 2
    const other = device(alice.id, 2, 77)
    const moved = await alice.request("prekeys_publish", { deviceId: 2, registrationId: 77, signedPreKey: spk, lastResortKem: other.lrk(1) })
    expectError(moved, "INVALID_SIGNATURE", "The signed prekey 1 is not signed by this key", moved.requestId as string)
    // nothing was stored
    const count = await alice.request("prekeys_count", { deviceId: 1 })
    expectError(count, "DEVICE_NOT_FOUND", "No prekeys published for device 1", count.requestId as string)
    expect((await alice.publish(d, { spk, lrk })).type).toBe("prekeys_published")
  }, 30000)

  test("sizes and shapes are checked, with a clear error, and the session goes on", async () => {
    const alice = await session()
    const d = device(alice.id, 1, 5)
    const spk = d.spk(1)
    const lrk = d.lrk(1)
    const short = d.sign("spk", 2, spk.publicKey.slice(2))
    const longKem = d.sign("lrk", 2, lrk.publicKey + "00")
    const X = "Expected an X25519 public key: 32 bytes as lowercase hex"
    const KEM = "Expected an ML-KEM-768 public key: 1184 bytes as lowercase hex"
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ deviceId: 1, registrationId: 5, signedPreKey: short, lastResortKem: lrk }, `signedPreKey.publicKey: ${X}`],
      [{ deviceId: 1, registrationId: 5, signedPreKey: spk, lastResortKem: longKem }, `lastResortKem.publicKey: ${KEM}`],
      [{ deviceId: 1, registrationId: 5, signedPreKey: spk, lastResortKem: spk }, `lastResortKem.publicKey: ${KEM}`],
      [{ deviceId: 1, registrationId: 5, signedPreKey: { ...spk, publicKey: spk.publicKey.toUpperCase() }, lastResortKem: lrk }, `signedPreKey.publicKey: ${X}`],
      [{ deviceId: 0, registrationId: 5, signedPreKey: spk, lastResortKem: lrk }, "deviceId: Expected a number between 1 and 2147483647"],
      [{ deviceId: 1, registrationId: 5, signedPreKey: { ...spk, signature: spk.signature.slice(2) }, lastResortKem: lrk }, "signedPreKey.signature: Expected an ed25519 signature: 64 bytes as lowercase hex"],
      [{ deviceId: 1, registrationId: 5, oneTimePreKeys: range(0, 101).map(() => spk) }, "oneTimePreKeys: Expected an array of at most 100 item(s)"],
    ]
    for (const [payload, message] of cases) {
      const reply = await alice.request("prekeys_publish", payload)
      expectError(reply, "INVALID_MESSAGE", `Invalid prekeys_publish payload at ${message}`, reply.requestId as string)
    }
    // the right size, signed, but not an ML-KEM-768 key: its first coefficient is 0xfff (q = 3329)
    const notKem = d.sign("lrk", 3, "ff0f" + lrk.publicKey.slice(4))
    const badKem = await alice.publish(d, { spk, lrk: notKem })
    expectError(badKem, "INVALID_MESSAGE", "The last-resort ML-KEM key 3 is not an ML-KEM-768 public key (a coefficient is not below 3329)", badKem.requestId as string)
    const badOneTime = await alice.publish(d, { spk, lrk, kems: [d.okem(1), d.sign("okem", 2, notKem.publicKey)] })
    expectError(badOneTime, "INVALID_MESSAGE", "The one-time ML-KEM key 2 is not an ML-KEM-768 public key (a coefficient is not below 3329)", badOneTime.requestId as string)
    const twice = await alice.publish(d, { spk, lrk, opks: [d.opk(1), d.opk(1)] })
    expectError(twice, "INVALID_MESSAGE", "oneTimePreKeys holds keyId 1 twice", twice.requestId as string)
    const bare = await alice.publish(d, { opks: [d.opk(1)] })
    expectError(bare, "INVALID_MESSAGE", "A new device or registrationId needs both signedPreKey and lastResortKem", bare.requestId as string)
    const badKey = await alice.request("bundle_fetch", { publicKey: "zz" })
    expectError(badKey, "INVALID_MESSAGE", "Invalid bundle_fetch payload at publicKey: Expected a string matching the pattern ^[0-9a-fA-F]{64}$", badKey.requestId as string)
    await expectAlive(alice.sock, true)
  }, 30000)

  test("a device's pools hold at most 200 keys of each kind; an account at most its devices (MAX_SESSIONS_PER_KEY)", async () => {
    const alice = await session()
    const d = device(alice.id, 1, 9)
    const spk = d.spk(1)
    const lrk = d.lrk(1)
    expect((await alice.publish(d, { spk, lrk, opks: range(0, 100).map(d.opk) })).payload.oneTimePreKeys).toBe(100)
    expect((await alice.publish(d, { opks: range(100, 100).map(d.opk) })).payload.oneTimePreKeys).toBe(200)
    const over = await alice.publish(d, { opks: [d.opk(200)] })
    expectError(over, "PREKEY_LIMIT", "Too many one-time X25519 prekeys for device 1 (at most 200 waiting)", over.requestId as string)
    expect((await alice.request("prekeys_count", { deviceId: 1 })).payload).toEqual({ deviceId: 1, oneTimePreKeys: 200, oneTimeKems: 0 })

    for (const id of [2, 3]) {
      const other = device(alice.id, id, 9)
      expect((await alice.publish(other, { spk: other.spk(1), lrk: other.lrk(1) })).type).toBe("prekeys_published")
    }
    const fourth = device(alice.id, 4, 9)
    const refused = await alice.publish(fourth, { spk: fourth.spk(1), lrk: fourth.lrk(1) })
    expectError(refused, "PREKEY_LIMIT", "This key has the most devices allowed (3): remove one first (device_remove)", refused.requestId as string)
    expect((await alice.request("device_remove", { deviceId: 3 })).payload).toEqual({ deviceId: 3, removed: true })
    expect((await alice.publish(fourth, { spk: fourth.spk(1), lrk: fourth.lrk(1) })).type).toBe("prekeys_published")
  }, 60000)

  test("bundle fetches are limited per requesting key (BUNDLE_FETCH_BURST / BUNDLE_FETCH_PER_MINUTE), with a metric", async () => {
    const alice = await session()
    const d = device(alice.id, 1, 3)
    await alice.publish(d, { spk: d.spk(1), lrk: d.lrk(1), opks: range(0, 20).map(d.opk) })
    const drainer = await session()
    const refusedBefore = await metric(`im_prekey_refused_total{frame="bundle_fetch"}`)
    for (let i = 0; i < 6; i++) expect((await drainer.fetch(alice.key)).type).toBe("bundle_response")
    const refused = await drainer.fetch(alice.key)
    expectError(refused, "RATE_LIMITED", "Too many bundle fetches (1 per minute)", refused.requestId as string)
    // the drainer's other sessions share its bucket; another key has its own
    const again = await session(drainer.id)
    expect((await again.fetch(alice.key)).payload.code).toBe("RATE_LIMITED")
    expect(await metric(`im_prekey_refused_total{frame="bundle_fetch"}`)).toBe(refusedBefore + 2)
    const friend = await session()
    expect((await friend.fetch(alice.key)).payload.devices[0].oneTimePreKey.keyId).toBe(6)
    // what the drainer got: six keys of twenty, the rest still there
    expect((await alice.request("prekeys_count", { deviceId: 1 })).payload.oneTimePreKeys).toBe(13)
  }, 30000)

  test("a removed device is no longer served; a reinstalled one (new registrationId) drops its old one-time keys", async () => {
    const alice = await session()
    const bob = await session()
    const one = device(alice.id, 1, 100)
    const two = device(alice.id, 2, 200)
    await alice.publish(one, { spk: one.spk(1), lrk: one.lrk(1), opks: [one.opk(1)] })
    await alice.publish(two, { spk: two.spk(1), lrk: two.lrk(1), opks: [two.opk(1), two.opk(2)] })
    expect((await bob.fetch(alice.key)).payload.devices.map((x: { deviceId: number }) => x.deviceId)).toEqual([1, 2])

    expect((await alice.request("device_remove", { deviceId: 1 })).payload).toEqual({ deviceId: 1, removed: true })
    expect((await alice.request("device_remove", { deviceId: 1 })).payload).toEqual({ deviceId: 1, removed: false })
    const after = await bob.fetch(alice.key)
    expect(after.payload.devices.map((x: { deviceId: number }) => x.deviceId)).toEqual([2])
    expect((await alice.request("devices", {})).payload.devices.map((x: { deviceId: number }) => x.deviceId)).toEqual([2])

    // device 2 reinstalled: its last one-time key (two.opk(2)) belonged to the old installation
    const reinstalled = device(alice.id, 2, 201)
    await alice.publish(reinstalled, { spk: reinstalled.spk(1), lrk: reinstalled.lrk(1) })
    const fresh = await bob.fetch(alice.key)
    expect(fresh.payload.devices).toHaveLength(1)
    expect(fresh.payload.devices[0].registrationId).toBe(201)
    expect(fresh.payload.devices[0].oneTimePreKey).toBeUndefined()
  }, 30000)

  test("bundle fetches are limited per address too, whatever keys it uses", async () => {
    const alice = await session()
    const d = device(alice.id, 1, 3)
    await alice.publish(d, { spk: d.spk(1), lrk: d.lrk(1) })
    let refused: Awaited<ReturnType<typeof alice.fetch>> | undefined
    let fetched = 0
    // fresh keys of six fetches each (their own bucket holds six) until the address's bucket is spent
    for (let k = 0; k < 10 && refused === undefined; k++) {
      const stranger = await session()
      for (let i = 0; i < 6 && refused === undefined; i++) {
        const reply = await stranger.fetch(alice.key)
        if (reply.type === "error") refused = reply
        else fetched++
      }
    }
    expect(refused).toBeDefined()
    expectError(refused!, "RATE_LIMITED", "Too many bundle fetches from this address (1 per minute)", refused!.requestId as string)
    expect(fetched).toBeLessThanOrEqual(40)
  }, 30000)
})
