/**
 * The security properties of secure sessions, each as an attack that must fail: forward secrecy
 * (a state taken at message k opens nothing before k and holds none of its keys), classical healing
 * (a stolen state stops reading after a DH round trip) and post-quantum healing (an attacker with
 * every X25519 secret stops reading after the next ML-KEM epoch, and reads nothing without a stolen
 * state). The attacker replays the victim's operations on its copy, with the victim's X25519 secrets
 * where the attack grants them (recorded by the key-generation hook) and its own randomness otherwise.
 */
import { describe, expect, test } from "bun:test"
import { bytesToHex } from "@noble/hashes/utils.js"
import { decodeEnvelope } from "../../../src/client/secure/Envelope.ts"
import { generateIdentity } from "../../../src/client/L2psCrypto.ts"
import { hooks, mlKemKeyPair, x25519KeyPair } from "../../../src/client/secure/KeySource.ts"
import { cloneSession, decrypt, type SessionState } from "../../../src/client/secure/Ratchet.ts"
import { decodeDevice, decodeSession, encodeDevice, encodeSession } from "../../../src/client/secure/StateCodec.ts"
import { attempt, pair, Party, recordingX25519, replayingX25519, T0 } from "./Conversation.ts"

/** Every byte array inside a state, for searching raw bytes as well as their JSON hex. */
const arraysOf = (value: unknown, out: Array<Uint8Array> = []): Array<Uint8Array> => {
  if (value instanceof Uint8Array) out.push(value)
  else if (Array.isArray(value)) for (const v of value) arraysOf(v, out)
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) arraysOf(v, out)
  return out
}

const contains = (haystack: Uint8Array, needle: Uint8Array) => {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

describe("forward secrecy", () => {
  test("a device's state taken after message k opens none of messages 1..k-1 and holds none of their keys or old chain keys", () => {
    const { alice, bob } = pair({ everyMessages: 3, everyMs: 1e15 })
    const used: Array<Uint8Array> = []
    const toBob: Array<Uint8Array> = []
    hooks.messageKey = (key, seed) => {
      used.push(key.slice(), seed.slice())
    }
    hooks.spentKey = (key) => {
      used.push(key.slice())
    }
    try {
      for (let round = 0; round < 6; round++) {
        // two messages from alice arrive in reverse order (a skipped key is kept, then used), one reply
        const first = alice.send(`a${round}.1`)
        const second = alice.send(`a${round}.2`)
        toBob.push(first, second)
        expect(bob.receive(second)).toBe(`a${round}.2`)
        expect(bob.receive(first)).toBe(`a${round}.1`)
        expect(alice.receive(bob.send(`b${round}`))).toBe(`b${round}`)
      }
      // ML-KEM epochs went by as well, so both ratchets are exercised
      expect(bob.session!.pq.sendEpoch).toBeGreaterThanOrEqual(2)
      const k = alice.send("message k")
      expect(bob.receive(k)).toBe("message k")
    } finally {
      hooks.messageKey = undefined
      hooks.spentKey = undefined
    }
    // every message key and seed so far (message k's too: used and gone), every root and chain key stepped past
    const earlier = used
    const sessionJson = encodeSession(bob.session!)
    const deviceJson = encodeDevice(bob.device)
    const snapshot = decodeSession(sessionJson)

    for (const c of toBob) expect(attempt(() => decrypt(decodeSession(sessionJson), c, T0))).toBeUndefined()
    const stored = [...arraysOf(snapshot), ...arraysOf(decodeDevice(deviceJson))]
    for (const key of earlier) {
      expect(sessionJson.includes(bytesToHex(key))).toBe(false)
      expect(deviceJson.includes(bytesToHex(key))).toBe(false)
      expect(stored.some((a) => contains(a, key))).toBe(false)
    }
    // the snapshot is a working state: it opens what comes next
    const next = alice.send("after k")
    expect(decrypt(snapshot, next, T0).plaintext).toEqual(new TextEncoder().encode("after k"))
  })
})

describe("hybrid", () => {
  test("with every ML-KEM secret but none of the X25519 ones (the account key included), nothing opens", () => {
    const cadence = { everyMessages: 4, everyMs: 1e15 }
    const { alice, bob } = pair(cadence)
    const deviceAtStart = structuredClone(bob.device)
    const sent: Array<Uint8Array> = []
    for (let round = 0; round < 4; round++) {
      const m = alice.send(`a${round}`)
      sent.push(m)
      bob.receive(m)
      alice.receive(bob.send(`b${round}`))
    }
    // bob's ML-KEM prekeys, but X25519 prekeys and an account key that are not his
    const stranger = generateIdentity()
    const x = (k: typeof deviceAtStart.signedPreKey) => ({ ...k, secretKey: x25519KeyPair().secretKey })
    const device = { ...deviceAtStart, signedPreKey: x(deviceAtStart.signedPreKey), oneTimePreKeys: deviceAtStart.oneTimePreKeys.map(x) }
    const thief = new Party({ publicKey: bob.identity.publicKey, secretKey: stranger.secretKey }, device, alice.identity.publicKey, cadence)
    expect(sent.map((m) => attempt(() => thief.receive(m)))).toEqual([undefined, undefined, undefined, undefined])
  })
})

describe("classical post-compromise security", () => {
  test("a stolen state reads on until the next DH round trip, then nothing", () => {
    // no ML-KEM step in this conversation: the healing seen here is the DH ratchet's alone
    const cadence = { everyMessages: 1e9, everyMs: 1e15 }
    const { alice, bob } = pair(cadence)
    bob.receive(alice.send("hello"))
    alice.receive(bob.send("hi"))
    bob.receive(alice.send("m1"))
    const thief = new Party(bob.identity, bob.device, alice.identity.publicKey, cadence)
    thief.session = cloneSession(bob.session!)

    const a2 = alice.send("m2")
    const a3 = alice.send("m3")
    bob.receive(a3)
    bob.receive(a2)
    expect(thief.receive(a3)).toBe("m3")
    expect(thief.receive(a2)).toBe("m2")
    // bob answers with the ratchet key he already had when his state was taken: still readable
    alice.receive(bob.send("r1"))
    const a4 = alice.send("m4")
    bob.receive(a4)
    expect(thief.receive(a4)).toBe("m4")
    // bob's next ratchet key was made after the theft; once alice answers it, the thief is out
    alice.receive(bob.send("r2"))
    const later: Array<Uint8Array> = []
    for (let round = 0; round < 3; round++) {
      const m = [alice.send(`late${round}.1`), alice.send(`late${round}.2`)]
      for (const x of m) bob.receive(x)
      later.push(...m)
      alice.receive(bob.send(`reply${round}`))
    }
    for (const m of later) expect(attempt(() => thief.receive(m))).toBeUndefined()
  })
})

interface Op {
  readonly kind: "receive" | "send"
  readonly bytes: Uint8Array
  readonly secrets: Array<Uint8Array>
}

/** Bob with every operation logged together with the X25519 secrets it generated. */
const logged = (bob: Party) => {
  const ops: Array<Op> = []
  return {
    ops,
    receive: (bytes: Uint8Array) => {
      const secrets: Array<Uint8Array> = []
      const t = recordingX25519(secrets, () => bob.receive(bytes))
      ops.push({ kind: "receive", bytes, secrets })
      return t
    },
    send: (message: string) => {
      const secrets: Array<Uint8Array> = []
      const bytes = recordingX25519(secrets, () => bob.send(message))
      ops.push({ kind: "send", bytes, secrets })
      return bytes
    }
  }
}

/** The attacker replays bob's operations on its copy with bob's X25519 secrets; returns what it opened. */
const replay = (thief: Party, ops: ReadonlyArray<Op>) =>
  ops.flatMap((op) => {
    if (op.kind === "send") {
      attempt(() => replayingX25519(op.secrets, () => thief.send("(the thief's own)")))
      return []
    }
    const opened = attempt(() => replayingX25519(op.secrets, () => thief.receive(op.bytes)))
    const h = decodeEnvelope(op.bytes).header
    return [{ epoch: h.epoch, dh: bytesToHex(h.dh), opened }]
  })

const conversation = (alice: Party, bob: ReturnType<typeof logged>, rounds: number) => {
  for (let round = 0; round < rounds; round++) {
    const first = alice.send(`a${round}.1`)
    const second = alice.send(`a${round}.2`)
    bob.receive(first)
    bob.receive(second)
    alice.receive(bob.send(`b${round}`))
  }
}

describe("post-quantum post-compromise security", () => {
  const cadence = { everyMessages: 4, everyMs: 1e15 }

  test("with a stolen state and every X25519 secret, nothing opens after the next completed ML-KEM epoch", () => {
    const { alice, bob: plainBob } = pair(cadence)
    const bob = logged(plainBob)
    conversation(alice, bob, 3)
    // steal at a moment with no ML-KEM step under way on bob's side (so no ML-KEM secret is taken)
    let guard = 0
    while (plainBob.session!.pq.ownKey !== undefined || plainBob.session!.pq.ownCiphertext !== undefined) {
      conversation(alice, bob, 1)
      if (++guard > 10) throw new Error("no quiet moment")
    }
    const stolen: SessionState = cloneSession(plainBob.session!)
    const theftEpoch = stolen.pq.sendEpoch
    const from = bob.ops.length
    conversation(alice, bob, 8)
    expect(plainBob.session!.pq.sendEpoch).toBeGreaterThan(theftEpoch + 1)

    const thief = new Party(plainBob.identity, structuredClone(plainBob.device), alice.identity.publicKey, cadence)
    thief.session = stolen
    const seen = replay(thief, bob.ops.slice(from))
    const before = seen.filter((m) => m.epoch === theftEpoch)
    const after = seen.filter((m) => m.epoch > theftEpoch)
    // X25519 being broken, the DH ratchet does not heal: the thief reads across alice's new ratchet keys...
    expect(before.filter((m) => m.opened !== undefined).length).toBeGreaterThanOrEqual(2)
    expect(new Set(before.filter((m) => m.opened !== undefined).map((m) => m.dh)).size).toBeGreaterThanOrEqual(2)
    // ...until the ML-KEM epoch whose keys were made after the theft completes
    expect(after.length).toBeGreaterThanOrEqual(6)
    expect(after.filter((m) => m.opened !== undefined)).toEqual([])
  })

  test("with every X25519 secret but no state, nothing opens, the first message included", () => {
    const { alice, bob: plainBob } = pair(cadence)
    const deviceAtStart = structuredClone(plainBob.device)
    const bob = logged(plainBob)
    conversation(alice, bob, 6)

    // control: the same replay with bob's ML-KEM prekey secrets too (his whole device state) reads the
    // messages of epoch 0, up to the first ML-KEM step, whose randomness it does not have
    const insider = new Party(plainBob.identity, structuredClone(deviceAtStart), alice.identity.publicKey, cadence)
    const insiderSaw = replay(insider, bob.ops).filter((m) => m.epoch === 0)
    expect(insiderSaw.length).toBeGreaterThanOrEqual(3)
    expect(insiderSaw.every((m) => m.opened !== undefined)).toBe(true)

    // the attacker holds the account key and every X25519 secret, but the ML-KEM secrets are not bob's
    const withoutKem = structuredClone(deviceAtStart)
    const wrong = (k: typeof withoutKem.lastResortKem) => ({ ...k, secretKey: mlKemKeyPair().secretKey })
    const device = { ...withoutKem, lastResortKem: wrong(withoutKem.lastResortKem), oneTimeKems: withoutKem.oneTimeKems.map(wrong) }
    const thief = new Party(plainBob.identity, device, alice.identity.publicKey, cadence)
    const seen = replay(thief, bob.ops)
    expect(seen.length).toBe(12)
    expect(seen.filter((m) => m.opened !== undefined)).toEqual([])
  })
})
