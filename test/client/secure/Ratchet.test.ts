/**
 * The ratchet's bounds and formats on the pure functions: out-of-order delivery, skipped keys bounded
 * per chain and per session and expiring, counter jumps, replays and tampering (the state deep-equal
 * before and after), the ML-KEM cadence, the envelope, signed prekeys and state serialization.
 */
import { describe, expect, test } from "bun:test"
import { ed25519 } from "@noble/curves/ed25519.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import { generateIdentity, sealFor } from "../../../src/client/L2psCrypto.ts"
import { toBase64 } from "../../../src/client/MlKemAes.ts"
import * as Schema from "effect/Schema"
import { DeviceBundle, PrekeysPublishPayload, prekeySigningString } from "../../../src/domain/Prekeys.ts"
import { addOneTimeKeys, bundleOf, createDevice, MAX_LOCAL_ONE_TIME_KEYS, publishPayload, refillCounts, rotateSignedPreKeys, rotationDue, verifyBundle } from "../../../src/client/secure/DeviceKeys.ts"
import { decodeEnvelope, schemeOf } from "../../../src/client/secure/Envelope.ts"
import { decrypt, MAX_SKIP, MAX_SKIPPED_KEYS, type SessionState, SKIPPED_KEY_TTL_MS } from "../../../src/client/secure/Ratchet.ts"
import { SecureError } from "../../../src/client/secure/SecureError.ts"
import { decodeDevice, decodeSession, encodeDevice, encodeSession } from "../../../src/client/secure/StateCodec.ts"
import { pair, T0 } from "./Conversation.ts"

const reasonOf = (f: () => unknown) => {
  try {
    f()
    return "opened"
  } catch (e) {
    return e instanceof SecureError ? e.reason : `threw ${String(e)}`
  }
}

/** A refused message must leave the state deep-equal to what it was. */
const refusedUnchanged = (state: SessionState, bytes: Uint8Array, now = T0) => {
  const before = structuredClone(state)
  const reason = reasonOf(() => decrypt(state, bytes, now))
  expect(state).toEqual(before)
  return reason
}

const started = () => {
  const { alice, bob } = pair()
  bob.receive(alice.send("hello"))
  alice.receive(bob.send("hi"))
  return { alice, bob }
}

describe("out of order, bounded", () => {
  test("messages of several chains delivered in any order all open", () => {
    const { alice, bob } = started()
    const sent: Array<[string, Uint8Array]> = []
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) sent.push([`r${round}m${i}`, alice.send(`r${round}m${i}`)])
      // bob's reply makes alice's next messages a new chain; it opens only after one of the round's messages
      bob.receive(sent[sent.length - 1]![1])
      alice.receive(bob.send(`ack${round}`))
    }
    const order = [9, 0, 5, 3, 11, 1, 8, 2, 6, 4, 10, 7].filter((i) => i % 4 !== 3)
    for (const i of order) expect(bob.receive(sent[i]![1])).toBe(sent[i]![0])
  })

  test("a counter more than MAX_SKIP ahead is refused, one exactly MAX_SKIP ahead opens", () => {
    const { alice, bob } = started()
    const sent = Array.from({ length: MAX_SKIP + 2 }, (_, i) => alice.send(`m${i}`))
    expect(refusedUnchanged(bob.session!, sent[MAX_SKIP + 1]!)).toBe("CounterJump")
    expect(bob.receive(sent[MAX_SKIP]!)).toBe(`m${MAX_SKIP}`)
    expect(bob.session!.skipped.length).toBe(MAX_SKIP)
    expect(bob.receive(sent[3]!)).toBe("m3")
    expect(bob.receive(sent[MAX_SKIP + 1]!)).toBe(`m${MAX_SKIP + 1}`)
  })

  test("skipped keys are capped per session: the oldest go first", () => {
    const { alice, bob } = started()
    const firsts: Array<Uint8Array> = []
    for (let chain = 0; chain < 3; chain++) {
      const sent = Array.from({ length: 801 }, (_, i) => alice.send(`c${chain}m${i}`))
      firsts.push(sent[0]!)
      bob.receive(sent[800]!)
      alice.receive(bob.send("next chain"))
    }
    expect(bob.session!.skipped.length).toBe(MAX_SKIPPED_KEYS)
    // the first chain's oldest keys were dropped; the newest chain's are there
    expect(refusedUnchanged(bob.session!, firsts[0]!)).toBe("Replay")
    expect(bob.receive(firsts[2]!)).toBe("c2m0")
  })

  test("skipped keys expire", () => {
    const { alice, bob } = started()
    const [m1, m2, m3] = [alice.send("m1"), alice.send("m2"), alice.send("m3")]
    bob.receive(m3, T0)
    expect(bob.receive(m1, T0 + SKIPPED_KEY_TTL_MS - 1)).toBe("m1")
    expect(refusedUnchanged(bob.session!, m2, T0 + SKIPPED_KEY_TTL_MS)).toBe("Replay")
  })

  test("a replayed message is refused, in the current chain, from the skipped keys and from an old chain", () => {
    const { alice, bob } = started()
    const [m1, m2] = [alice.send("m1"), alice.send("m2")]
    bob.receive(m2)
    bob.receive(m1)
    expect(refusedUnchanged(bob.session!, m2)).toBe("Replay")
    expect(refusedUnchanged(bob.session!, m1)).toBe("Replay")
    alice.receive(bob.send("reply"))
    bob.receive(alice.send("new chain"))
    expect(refusedUnchanged(bob.session!, m2)).toBe("Replay")
  })

  test("tampered header fields and ciphertext are refused with the state unchanged", () => {
    const { alice, bob } = started()
    const m = alice.send("intact")
    const at = (i: number, x = 0x01) => {
      const c = m.slice()
      c[i]! ^= x
      return c
    }
    expect(refusedUnchanged(bob.session!, at(0))).toBe("Malformed") // version
    expect(refusedUnchanged(bob.session!, at(1, 0x40))).toBe("Malformed") // unknown flag
    expect(refusedUnchanged(bob.session!, at(3))).toBe("DecryptFailed") // ratchet key: a DH step on a copy
    expect(refusedUnchanged(bob.session!, at(35, 0x02))).toBe("DecryptFailed") // n
    expect(refusedUnchanged(bob.session!, at(37))).toBe("DecryptFailed") // epoch with no key
    expect(refusedUnchanged(bob.session!, at(m.length - 20))).toBe("DecryptFailed") // ciphertext
    expect(refusedUnchanged(bob.session!, at(m.length - 1))).toBe("DecryptFailed") // tag
    expect(refusedUnchanged(bob.session!, m.subarray(0, 50))).toBe("Malformed")
    expect(bob.receive(m)).toBe("intact")
  })
})

describe("the ML-KEM ratchet's cadence", () => {
  test("a whole encapsulation key, then a whole ciphertext, every 50 messages, roles alternating", () => {
    const { alice, bob } = pair()
    let kemParts = 0
    let messages = 0
    const epochs: Array<number> = []
    const carry = (bytes: Uint8Array) => {
      const h = decodeEnvelope(bytes).header
      messages++
      if (h.pqKey !== undefined) kemParts++, epochs.push(h.pqKey.epoch)
      if (h.pqCiphertext !== undefined) kemParts++
      return bytes
    }
    for (let round = 0; round < 100; round++) {
      bob.receive(carry(alice.send(`a${round}`)))
      alice.receive(carry(bob.send(`b${round}`)))
    }
    // 200 messages: epochs 1..3 opened by initiator, responder, initiator in turn
    expect(epochs).toEqual([1, 2, 3])
    expect(kemParts).toBe(6)
    expect(alice.session!.pq.sendEpoch).toBe(3)
    expect(bob.session!.pq.sendEpoch).toBe(3)
    expect(messages).toBe(200)
  })

  test("an encapsulation key not yet answered goes again every 50 messages; the peer encapsulates once", () => {
    const { alice, bob } = pair()
    bob.receive(alice.send("hello"))
    alice.receive(bob.send("hi"))
    const withKey: Array<number> = []
    let firstCiphertext: Uint8Array | undefined
    for (let i = 0; i < 160; i++) {
      const m = alice.send(`m${i}`)
      if (decodeEnvelope(m).header.pqKey !== undefined) withKey.push(i)
      bob.receive(m)
      firstCiphertext ??= bob.session!.pq.ownCiphertext?.cipherText.slice()
    }
    // "hello" and "hi" count: the step is due at the epoch's 50th message, then goes again every 50
    expect(withKey).toEqual([48, 98, 148])
    // the key sent again is the same: bob encapsulated once and holds that ciphertext
    expect(bob.session!.pq.ownCiphertext!.cipherText).toEqual(firstCiphertext!)
    const reply = bob.send("answer")
    expect(decodeEnvelope(reply).header.pqCiphertext?.epoch).toBe(1)
    alice.receive(reply)
    expect(alice.session!.pq.sendEpoch).toBe(1)
    expect(alice.session!.pq.ownKey).toBeUndefined()
  })

  test("a quiet conversation steps after 24 hours even below 50 messages", () => {
    const { alice, bob } = pair()
    bob.receive(alice.send("a"))
    alice.receive(bob.send("b"))
    const later = T0 + 24 * 3_600_000
    const m = alice.send("next day", later)
    expect(decodeEnvelope(m).header.pqKey?.epoch).toBe(1)
    bob.receive(m, later)
    const reply = bob.send("answer", later)
    expect(decodeEnvelope(reply).header.pqCiphertext?.epoch).toBe(1)
    alice.receive(reply, later)
    expect(decodeEnvelope(alice.send("in epoch 1", later)).header.epoch).toBe(1)
  })

  test("an epoch's key is used only once both sides hold it, so messages crossing the step still open", () => {
    const cadence = { everyMessages: 2, everyMs: 1e15 }
    const { alice, bob } = pair(cadence)
    const inFlight: Array<[string, Uint8Array]> = []
    for (let i = 0; i < 30; i++) {
      inFlight.push([`a${i}`, alice.send(`a${i}`)])
      if (i % 3 === 2) {
        // deliver alice's batch in reverse, then bob answers twice
        for (const [t, b] of inFlight.reverse()) expect(bob.receive(b)).toBe(t)
        inFlight.length = 0
        const r1 = bob.send(`b${i}.1`)
        const r2 = bob.send(`b${i}.2`)
        expect(alice.receive(r2)).toBe(`b${i}.2`)
        expect(alice.receive(r1)).toBe(`b${i}.1`)
      }
    }
    expect(alice.session!.pq.sendEpoch).toBeGreaterThanOrEqual(4)
  })
})

describe("envelope", () => {
  test("steady-state header is 38 bytes: version, flags, device, ratchet key, n, pn, epoch", () => {
    const { alice, bob } = started()
    const m = alice.send("12345")
    const e = decodeEnvelope(m)
    expect(m[0]).toBe(1)
    expect(e.headerBytes.length).toBe(38)
    expect(m.length).toBe(38 + 5 + 16)
    bob.receive(m)
  })

  test("an unknown version is refused; the JSON shape tells the older L2PS scheme from a secure message", () => {
    const { alice } = started()
    const m = alice.send("x")
    const v2 = m.slice()
    v2[0] = 2
    expect(reasonOf(() => decodeEnvelope(v2))).toBe("Malformed")
    expect(schemeOf({ ciphertext: toBase64(m), nonce: "" })).toBe("secure/v1")
    const a = generateIdentity()
    expect(schemeOf(sealFor(a, generateIdentity().publicKey, "old"))).toBe("x25519-aes-256-gcm/v1")
  })
})

describe("prekeys", () => {
  test("each prekey is signed by the account key over the agreed string; a bundle verifies, a changed one does not", () => {
    const id = generateIdentity()
    const device = createDevice(id, { now: T0, deviceId: 5, registrationId: 77, oneTimePreKeys: 2, oneTimeKems: 1 })
    const payload = publishPayload(device)
    const spk = payload.signedPreKey!
    const signed = new TextEncoder().encode(prekeySigningString("spk", 5, 77, spk.keyId, spk.publicKey))
    expect(ed25519.verify(hexToBytes(spk.signature), signed, hexToBytes(id.publicKey))).toBe(true)
    expect(payload.oneTimePreKeys!.length).toBe(2)
    expect(hexToBytes(payload.lastResortKem!.publicKey).length).toBe(1184)

    // what the device publishes and what a node serves decode with the shared Schemas
    expect(() => Schema.decodeUnknownSync(PrekeysPublishPayload)(payload)).not.toThrow()
    const bundle = bundleOf(device)
    expect(() => Schema.decodeUnknownSync(DeviceBundle)(bundle)).not.toThrow()
    expect(verifyBundle(id.publicKey, bundle).kem.oneTime).toBe(true)
    expect(reasonOf(() => verifyBundle(generateIdentity().publicKey, bundle))).toBe("BadSignature")
    // a one-time key presented as the signed prekey: the kind is in the signed string
    expect(reasonOf(() => verifyBundle(id.publicKey, { ...bundle, signedPreKey: bundle.oneTimePreKey! }))).toBe("BadSignature")
    expect(reasonOf(() => verifyBundle(id.publicKey, { ...bundle, registrationId: 78 }))).toBe("BadSignature")
    const flipped = bundle.signedPreKey.publicKey.replace(/^./, (c) => (c === "0" ? "1" : "0"))
    expect(reasonOf(() => verifyBundle(id.publicKey, { ...bundle, signedPreKey: { ...bundle.signedPreKey, publicKey: flipped } }))).toBe("BadSignature")
    expect(reasonOf(() => verifyBundle(id.publicKey, { ...bundle, signedPreKey: { ...bundle.signedPreKey, publicKey: "ab" } }))).toBe("Malformed")
  })

  test("refills continue the key ids; rotation keeps the previous signed keys for first messages under way", () => {
    const id = generateIdentity()
    const device = createDevice(id, { now: T0, oneTimePreKeys: 2, oneTimeKems: 2 })
    const refilled = addOneTimeKeys(device, id, { preKeys: 3, kems: 1, now: T0 })
    expect(refilled.oneTimePreKeys.map((k) => k.keyId)).toEqual([2, 3, 4])
    expect(refilled.device.oneTimeKems.map((k) => k.keyId)).toEqual([0, 1, 2])
    expect(verifyBundle(id.publicKey, bundleOf({ ...refilled.device, oneTimePreKeys: refilled.device.oneTimePreKeys.slice(4) })).oneTimePreKey!.keyId).toBe(4)
    expect(refilled.retired).toEqual([])
    // refill only below 10 on the node, back to the pool size
    expect(refillCounts({ oneTimePreKeys: 10, oneTimeKems: 9 })).toEqual({ preKeys: 0, kems: 16 })
    expect(refillCounts({ oneTimePreKeys: 0, oneTimeKems: 30 })).toEqual({ preKeys: 100, kems: 0 })
    // keys handed out but never used do not pile up: past the bound the oldest are retired
    const full = addOneTimeKeys(refilled.device, id, { preKeys: MAX_LOCAL_ONE_TIME_KEYS, kems: 0, now: T0 })
    expect(full.device.oneTimePreKeys.length).toBe(MAX_LOCAL_ONE_TIME_KEYS)
    expect(full.retired.map((k) => k.keyId)).toEqual([0, 1, 2, 3, 4])
    expect(full.device.oneTimePreKeys[0]!.keyId).toBe(5)
    expect(rotationDue(device, T0 + 7 * 24 * 3_600_000 - 1)).toBe(false)
    expect(rotationDue(device, T0 + 7 * 24 * 3_600_000)).toBe(true)

    // a first message sent to the old signed prekey opens after one rotation
    const { alice, bob } = pair()
    const first = alice.send("sent before the rotation")
    const once = rotateSignedPreKeys(bob.device, bob.identity, T0 + 1)
    expect(once.retired).toEqual([])
    bob.device = once.device
    expect(bob.device.signedPreKey.keyId).toBe(1)
    expect(bob.receive(first)).toBe("sent before the rotation")
    // a second rotation retires the first keys: a first message to them no longer opens
    const { alice: carol, bob: dave } = pair()
    const late = carol.send("two rotations late")
    const twice = rotateSignedPreKeys(rotateSignedPreKeys(dave.device, dave.identity, T0 + 1).device, dave.identity, T0 + 2)
    expect(twice.retired.map((k) => k.keyId)).toEqual([0, 0])
    dave.device = twice.device
    expect(reasonOf(() => dave.receive(late))).toBe("UnknownPrekey")
  })
})

describe("serialization", () => {
  test("every state survives a round trip through JSON and works on", () => {
    const cadence = { everyMessages: 2, everyMs: 1e15 }
    const { alice, bob } = pair(cadence)
    const roundTrip = (s: SessionState) => {
      const back = decodeSession(encodeSession(s))
      expect(back).toEqual(s)
      return back
    }
    // the initiator with its PQXDH part pending, a device, a responder, states in the middle of ML-KEM steps
    alice.session = roundTrip(alice.session!)
    const device = decodeDevice(encodeDevice(bob.device))
    expect(device).toEqual(bob.device)
    bob.device = device
    const kinds = new Set<string>()
    for (let i = 0; i < 12; i++) {
      const x = alice.send(`a${i}`)
      const y = alice.send(`a${i}'`)
      expect(bob.receive(y)).toBe(`a${i}'`)
      bob.session = roundTrip(bob.session!) // with a skipped key
      expect(bob.receive(x)).toBe(`a${i}`)
      alice.receive(bob.send(`b${i}`))
      for (const s of [alice.session!, bob.session!]) {
        if (s.pq.ownKey !== undefined) kinds.add("ownKey")
        if (s.pq.ownCiphertext !== undefined) kinds.add("ownCiphertext")
        if (s.skipped.length > 0) kinds.add("skipped")
      }
      alice.session = roundTrip(alice.session!)
      bob.session = roundTrip(bob.session!)
    }
    expect([...kinds].sort()).toEqual(["ownCiphertext", "ownKey"])
    expect(bytesToHex(bob.session!.ad)).toBe(bytesToHex(alice.session!.ad))
    expect(reasonOf(() => decodeSession("{\"version\":2}"))).toBe("Malformed")
    expect(reasonOf(() => decodeSession("not json"))).toBe("Malformed")
  })
})
