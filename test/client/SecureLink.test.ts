/**
 * A messenger's prekey upkeep on the Clock (SecureLink.maintainEvery): on TestClock, the bundle is
 * published once, the one-time pools are refilled when the node holds fewer than 10, and the signed
 * prekeys are rotated after a week, the ones before the previous erased. The node here is a small
 * in-memory one that keeps what is published the way the real node does (src/relay/handlers/Prekeys.ts).
 */
import { describe, expect, test } from "bun:test"
import { Effect, Fiber, TestClock, TestContext } from "effect"
import { generateIdentity } from "../../src/client/L2psCrypto.ts"
import { L2psError, type L2psPeerShape, type PrekeysPublishData } from "../../src/client/L2psPeer.ts"
import { type BundleData, bundleOf, createDevice, verifyBundle } from "../../src/client/secure/DeviceKeys.ts"
import { decodeParcel } from "../../src/client/secure/Parcel.ts"
import { memoryStore } from "../../src/client/secure/SecureSessions.ts"
import { utf8 } from "../../src/client/secure/Bytes.ts"
import * as SecureLink from "../../src/client/SecureLink.ts"

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** What the node holds of one device, and every publish it got. */
const prekeyNode = () => {
  const publishes: Array<PrekeysPublishData> = []
  let held: { bundle: Omit<BundleData, "oneTimePreKey" | "oneTimeKem">; opk: number; okem: number; updatedAt: number } | undefined
  const peer = {
    devices: Effect.sync(() => ({
      devices: held === undefined ? [] : [{
        deviceId: held.bundle.deviceId,
        registrationId: held.bundle.registrationId,
        oneTimePreKeys: held.opk,
        oneTimeKems: held.okem,
        updatedAt: held.updatedAt
      }]
    })),
    prekeysPublish: (p: PrekeysPublishData) =>
      Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        publishes.push(p)
        const base = held?.bundle ?? { deviceId: p.deviceId, registrationId: p.registrationId, signedPreKey: p.signedPreKey!, lastResortKem: p.lastResortKem! }
        held = {
          bundle: { ...base, ...(p.signedPreKey === undefined ? {} : { signedPreKey: p.signedPreKey }), ...(p.lastResortKem === undefined ? {} : { lastResortKem: p.lastResortKem }) },
          opk: (held?.opk ?? 0) + (p.oneTimePreKeys?.length ?? 0),
          okem: (held?.okem ?? 0) + (p.oneTimeKems?.length ?? 0),
          updatedAt: now
        }
        return { deviceId: p.deviceId, oneTimePreKeys: held.opk, oneTimeKems: held.okem }
      })
  }
  return {
    peer: peer as unknown as L2psPeerShape,
    publishes,
    held: () => held!,
    take: (opk: number, okem: number) => void (held = { ...held!, opk: held!.opk - opk, okem: held!.okem - okem })
  }
}

describe("prekey upkeep on the Clock", () => {
  test("published once, refilled below 10, rotated weekly; the keys before the previous ones erased", async () => {
    const identity = generateIdentity()
    const node = prekeyNode()
    await Effect.gen(function*() {
      const store = memoryStore(createDevice(identity, { now: 0 }))
      const first = store.current().signedPreKey
      const link = yield* SecureLink.make(identity, node.peer, store)
      const fiber = yield* Effect.fork(link.maintainEvery(HOUR, Effect.succeed(true)))

      yield* TestClock.adjust(HOUR)
      expect(node.publishes).toHaveLength(1)
      expect(node.held()).toMatchObject({ opk: 100, okem: 25 })
      expect(node.held().bundle.signedPreKey.keyId).toBe(0)

      // Six days of hourly checks with full pools: nothing more is sent.
      yield* TestClock.adjust(6 * DAY)
      expect(node.publishes).toHaveLength(1)

      // Senders took 16 first messages: 9 ML-KEM keys left, below 10; 84 X25519 keys, not.
      node.take(16, 16)
      yield* TestClock.adjust(HOUR)
      expect(node.publishes).toHaveLength(2)
      expect(node.publishes[1]!.oneTimeKems).toHaveLength(16)
      expect(node.publishes[1]!.oneTimePreKeys).toHaveLength(0)
      expect(node.held()).toMatchObject({ opk: 84, okem: 25 })
      // The new keys are the device's own: it can open what is sealed to them.
      const kemIds = new Set(store.current().oneTimeKems.map((k) => k.keyId))
      expect(node.publishes[1]!.oneTimeKems!.every((k) => kemIds.has(k.keyId))).toBe(true)

      // A week after they were made, the signed keys are replaced and published; the bundle still verifies.
      yield* TestClock.adjust(DAY)
      expect(node.held().bundle.signedPreKey.keyId).toBe(1)
      expect(node.held().bundle.lastResortKem.keyId).toBe(1)
      expect(store.current().previousSignedPreKey?.keyId).toBe(0)
      expect(() => verifyBundle(identity.publicKey, node.held().bundle)).not.toThrow()
      expect(first.secretKey.some((b) => b !== 0)).toBe(true)

      // The next rotation erases the first keys (two rotations old), not only unlinks them.
      yield* TestClock.adjust(7 * DAY)
      expect(node.held().bundle.signedPreKey.keyId).toBe(2)
      expect(store.current().previousSignedPreKey?.keyId).toBe(1)
      expect(first.secretKey.every((b) => b === 0)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise)
  })
})

describe("a recipient's devices as the node lists them", () => {
  test("a device gone from the list gets no part of the next message, and its sessions are dropped and erased", async () => {
    const alice = generateIdentity()
    const bob = generateIdentity()
    const devices = [createDevice(bob, { now: 0, deviceId: 1 }), createDevice(bob, { now: 0, deviceId: 2 })]
    let listed = [1, 2]
    const peer = {
      snapshot: Effect.succeed({ connected: true, registered: true, peers: [] }),
      bundleFetch: (key: string) =>
        Effect.succeed({ publicKey: key, devices: key === bob.publicKey ? devices.filter((d) => listed.includes(d.deviceId)).map((d) => bundleOf(d)) : [] })
    } as unknown as L2psPeerShape
    await Effect.gen(function*() {
      const store = memoryStore(createDevice(alice, { now: 0 }))
      const link = yield* SecureLink.make(alice, peer, store, { deviceListTtlMs: 60_000 })
      const partsOf = (sealed: { readonly encrypted: { readonly ciphertext: string } } | undefined) =>
        decodeParcel(Uint8Array.from(Buffer.from(sealed!.encrypted.ciphertext, "base64"))).map((p) => p.deviceId)

      expect(partsOf(yield* link.seal(bob.publicKey, utf8("to both"), 1))).toEqual([1, 2])
      const second = store.sessions.get(`${bob.publicKey}/2`)!.active
      expect(second.rootKey.some((b) => b !== 0)).toBe(true)

      listed = [1]
      // Within the list's lifetime the sender still seals for both; after it, only for what is listed.
      expect(partsOf(yield* link.seal(bob.publicKey, utf8("still both"), 2))).toEqual([1, 2])
      yield* TestClock.adjust(60_000)
      expect(partsOf(yield* link.seal(bob.publicKey, utf8("one left"), 60_001))).toEqual([1])
      expect(store.sessions.has(`${bob.publicKey}/2`)).toBe(false)
      expect(store.sessions.has(`${bob.publicKey}/1`)).toBe(true)
      expect(second.rootKey.every((b) => b === 0)).toBe(true)
    }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise)
  })

  test("past the list's lifetime with the node away, the last list still seals at once (the message waits in the outbox, not failed); a first message to someone never listed fails", async () => {
    const alice = generateIdentity()
    const bob = generateIdentity()
    const device = createDevice(bob, { now: 0, deviceId: 7 })
    let registered = true
    let fetches = 0
    const peer = {
      snapshot: Effect.sync(() => ({ connected: registered, registered, peers: [] })),
      bundleFetch: (key: string) =>
        Effect.suspend(() => {
          fetches++
          if (!registered) return Effect.fail(new L2psError({ code: "TIMEOUT", message: "Timeout waiting for bundle_response (10000ms)" }))
          return Effect.succeed({ publicKey: key, devices: key === bob.publicKey ? [bundleOf(device)] : [] })
        })
    } as unknown as L2psPeerShape
    await Effect.gen(function*() {
      const link = yield* SecureLink.make(alice, peer, memoryStore(createDevice(alice, { now: 0 })), { deviceListTtlMs: 60_000 })
      const partsOf = (sealed: { readonly encrypted: { readonly ciphertext: string } } | undefined) =>
        decodeParcel(Uint8Array.from(Buffer.from(sealed!.encrypted.ciphertext, "base64"))).map((p) => p.deviceId)
      expect(partsOf(yield* link.seal(bob.publicKey, utf8("while connected"), 1))).toEqual([7])
      const asked = fetches

      registered = false
      yield* TestClock.adjust(120_000)
      expect(partsOf(yield* link.seal(bob.publicKey, utf8("typed while the node is away"), 120_001))).toEqual([7])
      expect(fetches).toBe(asked)
      // Should the connection drop during the request, its failure does not fail the message either.
      const dropping = { ...peer, snapshot: Effect.succeed({ connected: true, registered: true, peers: [] }) } as L2psPeerShape
      const other = yield* SecureLink.make(alice, dropping, memoryStore(createDevice(alice, { now: 0 })), { deviceListTtlMs: 60_000 })
      registered = true
      yield* other.seal(bob.publicKey, utf8("first"), 120_002)
      registered = false
      yield* TestClock.adjust(120_000)
      expect(partsOf(yield* other.seal(bob.publicKey, utf8("dropped mid-request"), 240_003))).toEqual([7])

      // Never listed: nothing to seal with, so it fails (the caller says not sent, and why).
      const stranger = generateIdentity()
      const refused = yield* Effect.flip(link.seal(stranger.publicKey, utf8("hello?"), 240_004))
      expect(refused._tag).toBe("L2psError")
    }).pipe(Effect.provide(TestContext.TestContext), Effect.runPromise)
  })
})
