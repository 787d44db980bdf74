/**
 * SecureSessions over a store: sessions started from a bundle alone, several devices per account,
 * first messages and one-time keys, reinstalls, sessions started from both sides at once, and states
 * left untouched by every refused message.
 */
import { describe, expect, test } from "bun:test"
import { Effect, TestClock, TestContext } from "effect"
import { generateIdentity, type Identity } from "../../../src/client/L2psCrypto.ts"
import { bundleOf, createDevice } from "../../../src/client/secure/DeviceKeys.ts"
import { decodeEnvelope } from "../../../src/client/secure/Envelope.ts"
import { SecureError } from "../../../src/client/secure/SecureError.ts"
import * as SecureSessions from "../../../src/client/secure/SecureSessions.ts"
import { encodeDevice, encodeSession } from "../../../src/client/secure/StateCodec.ts"
import { text } from "./Conversation.ts"

const run = <A, E>(e: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(e.pipe(Effect.provide(TestContext.TestContext)))
const reasonOf = async (e: Effect.Effect<unknown, unknown>) => {
  const out = await Effect.runPromise(Effect.either(e).pipe(Effect.provide(TestContext.TestContext)))
  if (out._tag === "Right") return "opened"
  return out.left instanceof SecureError ? out.left.reason : String(out.left)
}

interface Device {
  readonly identity: Identity
  readonly store: ReturnType<typeof SecureSessions.memoryStore>
  readonly sessions: SecureSessions.SecureSessions
  readonly deviceId: number
  /** what a node would serve now: takes one one-time key of each kind, as the node's claim does */
  readonly claimBundle: () => ReturnType<typeof bundleOf>
}

const deviceOf = (identity: Identity, deviceId: number, pools = 3): Device => {
  const store = SecureSessions.memoryStore(createDevice(identity, { now: 0, deviceId, oneTimePreKeys: pools, oneTimeKems: pools }))
  const served = new Set<string>()
  return {
    identity,
    store,
    deviceId,
    sessions: SecureSessions.make(identity, store),
    claimBundle: () => {
      const d = store.current()
      const opk = d.oneTimePreKeys.find((k) => !served.has(`opk${k.keyId}`))
      const okem = d.oneTimeKems.find((k) => !served.has(`okem${k.keyId}`))
      if (opk !== undefined) served.add(`opk${opk.keyId}`)
      if (okem !== undefined) served.add(`okem${okem.keyId}`)
      const full = bundleOf(d)
      return {
        deviceId: full.deviceId,
        registrationId: full.registrationId,
        signedPreKey: full.signedPreKey,
        lastResortKem: full.lastResortKem,
        ...(opk === undefined ? {} : { oneTimePreKey: bundleOf({ ...d, oneTimePreKeys: [opk] }).oneTimePreKey! }),
        ...(okem === undefined ? {} : { oneTimeKem: bundleOf({ ...d, oneTimeKems: [okem] }).oneTimeKem! })
      }
    }
  }
}

const target = (to: Device) => ({ peer: to.identity.publicKey, deviceId: to.deviceId, bundle: to.claimBundle() })
const known = (to: Device) => ({ peer: to.identity.publicKey, deviceId: to.deviceId })

const sealOne = async (from: Device, to: Device, message: string, withBundle = false) => {
  const out = await run(from.sessions.encryptFor([withBundle ? target(to) : known(to)], message))
  return out[0]!.bytes
}

const open = async (at: Device, from: Device, bytes: Uint8Array) => text(await run(at.sessions.decrypt(from.identity.publicKey, from.deviceId, bytes)))

/** Everything a device's store holds, as the secrets store would write it. */
const snapshot = (d: Device) =>
  JSON.stringify([
    encodeDevice(d.store.current()),
    [...d.store.sessions.entries()].map(([k, r]) => [k, encodeSession(r.active), r.archived.map(encodeSession)])
  ])

describe("sessions from a bundle alone", () => {
  test("A sends three messages from B's bundle while B is offline; B opens all three, in order", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const bundle = bob.claimBundle()
    const sent: Array<Uint8Array> = []
    for (const m of ["one", "two", "three"]) {
      const out = await run(alice.sessions.encryptFor([{ peer: bob.identity.publicKey, deviceId: bob.deviceId, bundle }], m))
      sent.push(out[0]!.bytes)
    }
    // each message carries the PQXDH part until bob answers: any of them can set up the session
    expect(sent.every((b) => decodeEnvelope(b).header.prekey !== undefined)).toBe(true)
    expect(bob.store.sessions.size).toBe(0)
    expect([await open(bob, alice, sent[0]!), await open(bob, alice, sent[1]!), await open(bob, alice, sent[2]!)]).toEqual(["one", "two", "three"])
    // the one-time keys the first message used are gone from bob's device
    expect(bob.store.current().oneTimePreKeys.map((k) => k.keyId)).toEqual([1, 2])
    expect(bob.store.current().oneTimeKems.map((k) => k.keyId)).toEqual([1, 2])
    // bob answers; alice's next message no longer carries the PQXDH part
    expect(await open(alice, bob, await sealOne(bob, alice, "hi alice"))).toBe("hi alice")
    const after = await sealOne(alice, bob, "four")
    expect(decodeEnvelope(after).header.prekey).toBeUndefined()
    expect(await open(bob, alice, after)).toBe("four")
  })

  test("first messages arriving out of order open, and a later one re-using the same PQXDH part joins the same session", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const bundle = bob.claimBundle()
    const [m1, m2] = [
      (await run(alice.sessions.encryptFor([{ peer: bob.identity.publicKey, deviceId: 2, bundle }], "m1")))[0]!.bytes,
      (await run(alice.sessions.encryptFor([{ peer: bob.identity.publicKey, deviceId: 2 }], "m2")))[0]!.bytes
    ]
    expect(await open(bob, alice, m2)).toBe("m2")
    expect(await open(bob, alice, m1)).toBe("m1")
    expect(bob.store.sessions.get(`${alice.identity.publicKey}/1`)!.archived).toEqual([])
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, m1))).toBe("Replay")
  })

  test("with the one-time pools empty the bundle's last-resort ML-KEM key sets the session up", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2, 0)
    const bundle = bob.claimBundle()
    expect(bundle.oneTimeKem).toBeUndefined()
    expect(bundle.oneTimePreKey).toBeUndefined()
    const m = await sealOne(alice, bob, "via last resort", true)
    expect(decodeEnvelope(m).header.prekey!.kemOneTime).toBe(false)
    expect(await open(bob, alice, m)).toBe("via last resort")
  })

  test("a bundle whose signature does not verify is refused before anything is sent", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const mallory = deviceOf(generateIdentity(), 2)
    // mallory's keys under bob's account key: signed by the wrong account
    const forged = { peer: bob.identity.publicKey, deviceId: 2, bundle: mallory.claimBundle() }
    expect(await reasonOf(alice.sessions.encryptFor([forged], "x"))).toBe("BadSignature")
    expect(alice.store.sessions.size).toBe(0)
  })
})

describe("several devices", () => {
  test("A's message opens on both of B's devices and on A's other device; B's reply shows on B's other device", async () => {
    const a = generateIdentity()
    const b = generateIdentity()
    const [a1, a2, b1, b2] = [deviceOf(a, 11), deviceOf(a, 12), deviceOf(b, 21), deviceOf(b, 22)]
    const sealed = await run(a1.sessions.encryptFor([target(b1), target(b2), target(a2)], "to every device"))
    expect(sealed.map((s) => s.deviceId)).toEqual([21, 22, 12])
    // each copy is its own session: different bytes, and each opens only on its device
    expect(await open(b1, a1, sealed[0]!.bytes)).toBe("to every device")
    expect(await open(b2, a1, sealed[1]!.bytes)).toBe("to every device")
    expect(await open(a2, a1, sealed[2]!.bytes)).toBe("to every device")
    // b1's copy names b1's installation in its PQXDH part
    expect(await reasonOf(b2.sessions.decrypt(a.publicKey, 11, sealed[0]!.bytes))).toBe("UnknownPrekey")

    const reply = await run(b1.sessions.encryptFor([known(a1), target(a2), target(b2)], "reply from b1"))
    expect(await open(a1, b1, reply[0]!.bytes)).toBe("reply from b1")
    expect(await open(a2, b1, reply[1]!.bytes)).toBe("reply from b1")
    expect(await open(b2, b1, reply[2]!.bytes)).toBe("reply from b1")
  })

  test("a device named twice gets two messages from successive keys; a bundle of another device is refused", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const twice = await run(alice.sessions.encryptFor([target(bob), known(bob)], "twice"))
    expect(decodeEnvelope(twice[0]!.bytes).header.n).toBe(0)
    expect(decodeEnvelope(twice[1]!.bytes).header.n).toBe(1)
    expect(await open(bob, alice, twice[1]!.bytes)).toBe("twice")
    expect(await open(bob, alice, twice[0]!.bytes)).toBe("twice")
    const other = deviceOf(bob.identity, 3)
    expect(await reasonOf(alice.sessions.encryptFor([{ peer: bob.identity.publicKey, deviceId: 2, bundle: other.claimBundle() }], "x"))).toBe("Malformed")
  })

  test("a reinstalled device (a new registration id) gets a new session; the old installation's messages no longer open there", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    expect(await open(bob, alice, await sealOne(alice, bob, "before", true))).toBe("before")
    const reinstalled = deviceOf(bob.identity, 2)
    expect(reinstalled.store.current().registrationId).not.toBe(bob.store.current().registrationId)
    // the old session is for the old installation: its message does not open on the new one
    expect(await reasonOf(reinstalled.sessions.decrypt(alice.identity.publicKey, 1, await sealOne(alice, bob, "stale")))).toBe("UnknownPrekey")
    // nor once the old installation had answered (no PQXDH part left to name it)
    expect(await open(alice, bob, await sealOne(bob, alice, "from the old installation"))).toBe("from the old installation")
    expect(await reasonOf(reinstalled.sessions.decrypt(alice.identity.publicKey, 1, await sealOne(alice, bob, "stale")))).toBe("NoSession")
    const fresh = await sealOne(alice, reinstalled, "after reinstall", true)
    expect(decodeEnvelope(fresh).header.prekey!.recipientRegistrationId).toBe(reinstalled.store.current().registrationId)
    expect(await open(reinstalled, alice, fresh)).toBe("after reinstall")
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, fresh))).toBe("UnknownPrekey")
  })

  test("sessions started by both sides at once converge: every message opens and later ones use one session", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const fromAlice = await sealOne(alice, bob, "hello bob", true)
    const fromBob = await sealOne(bob, alice, "hello alice", true)
    expect(await open(bob, alice, fromAlice)).toBe("hello bob")
    expect(await open(alice, bob, fromBob)).toBe("hello alice")
    for (let i = 0; i < 3; i++) {
      expect(await open(bob, alice, await sealOne(alice, bob, `a${i}`))).toBe(`a${i}`)
      expect(await open(alice, bob, await sealOne(bob, alice, `b${i}`))).toBe(`b${i}`)
    }
    const aliceSide = alice.store.sessions.get(`${bob.identity.publicKey}/2`)!
    const bobSide = bob.store.sessions.get(`${alice.identity.publicKey}/1`)!
    expect(aliceSide.active.dhRemote).toEqual(bobSide.active.dhSelf.publicKey)
  })
})

describe("refused messages leave every state as it was", () => {
  const setup = async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    expect(await open(bob, alice, await sealOne(alice, bob, "start", true))).toBe("start")
    expect(await open(alice, bob, await sealOne(bob, alice, "ok"))).toBe("ok")
    return { alice, bob }
  }

  test("a replayed ciphertext is refused", async () => {
    const { alice, bob } = await setup()
    const m = await sealOne(alice, bob, "once")
    expect(await open(bob, alice, m)).toBe("once")
    const before = snapshot(bob)
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, m))).toBe("Replay")
    expect(snapshot(bob)).toBe(before)
  })

  test("a tampered header or ciphertext is refused; the untampered message opens afterwards", async () => {
    const { alice, bob } = await setup()
    const m = await sealOne(alice, bob, "intact")
    const before = snapshot(bob)
    const flip = (at: number) => {
      const c = m.slice()
      c[at]! ^= 0x01
      return c
    }
    // 0 version, 1 flags, 2 sender device, 3..34 ratchet key, 35 n, 36 pn, 37 epoch, then the ciphertext
    const reasons = []
    for (const at of [0, 1, 2, 3, 20, 35, 36, 37, 38, m.length - 1]) reasons.push(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, flip(at))))
    expect(reasons).toEqual(["Malformed", "Malformed", "WrongDevice", "DecryptFailed", "DecryptFailed", "DecryptFailed", "DecryptFailed", "DecryptFailed", "DecryptFailed", "DecryptFailed"])
    expect(snapshot(bob)).toBe(before)
    expect(await open(bob, alice, m)).toBe("intact")
  })

  test("a message from another device than the one named, or a truncated one, is refused", async () => {
    const { alice, bob } = await setup()
    const m = await sealOne(alice, bob, "x")
    const before = snapshot(bob)
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 9, m))).toBe("WrongDevice")
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, m.subarray(0, 40)))).toBe("Malformed")
    expect(await reasonOf(bob.sessions.decrypt(generateIdentity().publicKey, 1, m))).toBe("NoSession")
    expect(snapshot(bob)).toBe(before)
  })

  test("a tampered first message is refused and uses up no one-time key; the intact one opens", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const first = await sealOne(alice, bob, "first", true)
    const before = snapshot(bob)
    for (const at of [40, 300, first.length - 1]) {
      const bad = first.slice()
      bad[at]! ^= 0x01
      expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, bad))).toBe("DecryptFailed")
    }
    expect(snapshot(bob)).toBe(before)
    expect(bob.store.current().oneTimePreKeys.every((k) => k.secretKey.some((b) => b !== 0))).toBe(true)
    expect(await open(bob, alice, first)).toBe("first")
  })

  test("a first message replayed after its one-time keys were used is refused", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const first = await sealOne(alice, bob, "first", true)
    expect(await open(bob, alice, first)).toBe("first")
    // bob drops the session (say, a restore from an old backup of sessions): the replay still fails
    bob.store.sessions.clear()
    const before = snapshot(bob)
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, first))).toBe("UnknownPrekey")
    expect(snapshot(bob)).toBe(before)
  })

  test("a first message over the last-resort key, replayed once its session was replaced, is refused", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2, 0)
    const first = await sealOne(alice, bob, "first", true)
    expect(await open(bob, alice, first)).toBe("first")
    bob.store.sessions.clear()
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, first))).toBe("Replay")
  })
})

describe("concurrency", () => {
  test("encryptions started at once run one at a time: no message key is used twice", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    // a store that yields on every read, as a real one does, so that unguarded operations interleave
    const slow: SecureSessions.SecureStore = {
      loadDevice: Effect.zipRight(Effect.yieldNow(), alice.store.loadDevice),
      loadSession: (peer, deviceId) => Effect.zipRight(Effect.yieldNow(), alice.store.loadSession(peer, deviceId)),
      commit: (change) => Effect.zipRight(Effect.yieldNow(), alice.store.commit(change))
    }
    const sessions = SecureSessions.make(alice.identity, slow)
    await run(sessions.encryptFor([target(bob)], "first"))
    const sealed = await run(Effect.all(Array.from({ length: 8 }, (_, i) => sessions.encryptFor([known(bob)], `m${i}`)), { concurrency: "unbounded" }))
    const counters = sealed.map((s) => decodeEnvelope(s[0]!.bytes).header.n)
    expect(new Set(counters).size).toBe(8)
    for (let i = 0; i < 8; i++) expect(await open(bob, alice, sealed[i]![0]!.bytes)).toBe(`m${i}`)
  })
})

describe("opening without storing", () => {
  test("a message opened but not stored (a crash before the commit) opens again; once stored, it is a replay", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const first = await sealOne(alice, bob, "first", true)
    const before = snapshot(bob)
    const lost = await run(bob.sessions.prepareDecrypt(alice.identity.publicKey, 1, first))
    expect(text(lost.plaintext)).toBe("first")
    // the process dies here: nothing was stored, and the one-time keys are still there
    expect(snapshot(bob)).toBe(before)
    const again = await run(bob.sessions.exclusive(Effect.gen(function*() {
      const opened = yield* bob.sessions.prepareDecrypt(alice.identity.publicKey, 1, first)
      yield* bob.store.commit(opened.change)
      opened.release()
      return opened
    })))
    expect(text(again.plaintext)).toBe("first")
    expect(bob.store.current().oneTimePreKeys.length).toBe(2)
    expect(await reasonOf(bob.sessions.decrypt(alice.identity.publicKey, 1, first))).toBe("Replay")
    expect(await open(bob, alice, await sealOne(alice, bob, "second"))).toBe("second")
  })
})

describe("erasure", () => {
  test("after a message opens, the replaced state's secrets and the used one-time keys are overwritten", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const usedOpk = bob.store.current().oneTimePreKeys[0]!
    const first = await sealOne(alice, bob, "first", true)
    expect(await open(bob, alice, first)).toBe("first")
    expect(usedOpk.secretKey.every((b) => b === 0)).toBe(true)
    const old = bob.store.sessions.get(`${alice.identity.publicKey}/1`)!.active
    const rootBefore = old.rootKey.slice()
    expect(await open(bob, alice, await sealOne(alice, bob, "second"))).toBe("second")
    expect(rootBefore.some((b) => b !== 0)).toBe(true)
    expect(old.rootKey.every((b) => b === 0)).toBe(true)
    expect(old.recv!.key.every((b) => b === 0)).toBe(true)
    expect(old.dhSelf.secretKey.every((b) => b === 0)).toBe(true)
  })
})

describe("the clock", () => {
  test("the ML-KEM step of a quiet conversation comes from Effect's Clock: due 24 hours after the epoch began", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const pqKeyEpoch = await Effect.runPromise(
      Effect.gen(function*() {
        const first = (yield* alice.sessions.encryptFor([target(bob)], "hello"))[0]!.bytes
        yield* bob.sessions.decrypt(alice.identity.publicKey, 1, first)
        const reply = (yield* bob.sessions.encryptFor([known(alice)], "hi"))[0]!.bytes
        yield* alice.sessions.decrypt(bob.identity.publicKey, 2, reply)
        yield* TestClock.adjust("23 hours")
        const early = (yield* alice.sessions.encryptFor([known(bob)], "not yet"))[0]!.bytes
        expect(decodeEnvelope(early).header.pqKey).toBeUndefined()
        yield* TestClock.adjust("1 hour")
        const due = (yield* alice.sessions.encryptFor([known(bob)], "a day later"))[0]!.bytes
        expect(text(yield* bob.sessions.decrypt(alice.identity.publicKey, 1, early))).toBe("not yet")
        expect(text(yield* bob.sessions.decrypt(alice.identity.publicKey, 1, due))).toBe("a day later")
        return decodeEnvelope(due).header.pqKey?.epoch
      }).pipe(Effect.provide(TestContext.TestContext))
    )
    expect(pqKeyEpoch).toBe(1)
  })
})

describe("safety numbers", () => {
  test("60 digits in groups of five, the same on both sides, another for another key", async () => {
    const alice = deviceOf(generateIdentity(), 1)
    const bob = deviceOf(generateIdentity(), 2)
    const n = alice.sessions.safetyNumber(bob.identity.publicKey)
    expect(n).toMatch(/^\d{5}( \d{5}){11}$/)
    expect(bob.sessions.safetyNumber(alice.identity.publicKey)).toBe(n)
    expect(alice.sessions.safetyNumber(generateIdentity().publicKey)).not.toBe(n)
  })
})
