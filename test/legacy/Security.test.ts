/**
 * Attacks on the legacy signaling server from the security review (issue 13: findings 4, 7 legacy
 * part, 12), each performed as a client would, over memory sockets on TestClock.
 */
import { describe, expect, test } from "bun:test"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Effect, TestClock } from "effect"
import { defaultLimits } from "../../src/config/NodeConfig.ts"
import { legacyChallengeMessage } from "../../src/domain/LegacyChallenge.ts"
import {
  type LegacyClient,
  legacyClient,
  type LegacyIdentity,
  legacyIdentity,
  legacyScenario,
  registered,
  registerPayload,
  sealed,
  verification
} from "./LegacyTestClient.ts"

const TIMEOUT = 30_000

const errorOf = (frame: { type: string; payload: any }) =>
  frame.type === "error" ? [frame.payload.errorType, frame.payload.details] : [frame.type, frame.payload]

/** The same signing key with another ML-KEM key: the owner rotated its encryption key. */
const rotated = (id: LegacyIdentity, fill: number): LegacyIdentity => ({ ...id, publicKey: new Uint8Array(1184).fill(fill) })

/** A register frame with the challenge extension, as our client builds it (`challenge` then `register`). */
const challengeRegister = (c: LegacyClient, clientId: string, id: LegacyIdentity = c.id, node?: string) =>
  Effect.gen(function*() {
    const ch = yield* c.request("challenge", {})
    expect(ch.type).toBe("challenge")
    const message = legacyChallengeMessage({ nodeKeyHex: node ?? ch.payload.node, clientId, nonce: ch.payload.nonce, publicKey: id.publicKey })
    const payload = {
      ...registerPayload(clientId, id),
      challenge: { nonce: ch.payload.nonce, signature: Buffer.from(ml_dsa65.sign(message, id.signingSecretKey)).toString("base64") }
    }
    return { payload, reply: yield* c.request("register", payload) }
  })

describe("legacy security (issue 13)", () => {
  test("4: a captured registration of a replaced ML-KEM key never registers again (no key rollback)", () =>
    legacyScenario({}, Effect.gen(function*() {
      const aliceId = legacyIdentity()
      const captured = registerPayload("alice", aliceId)
      const alice = yield* legacyClient(aliceId)
      expect((yield* alice.request("register", captured)).type).toBe("register")
      yield* alice.socket.close
      const newer = rotated(aliceId, 7)
      const back = yield* legacyClient(newer)
      expect((yield* back.register("alice")).type).toBe("register")
      yield* back.socket.close
      const mallory = yield* legacyClient()
      expect(errorOf(yield* mallory.request("register", captured))).toEqual([
        "INVALID_PUBLIC_KEY",
        "This public key was replaced for alice and cannot be registered again"
      ])
      const bob = yield* registered("bob")
      expect((yield* bob.request("request_public_key", { targetId: "alice" })).payload.publicKey).toEqual(Array.from(newer.publicKey))
    })), TIMEOUT)

  test("4: the owner's newest registration takes its id over from a replayed one instead of being locked out", () =>
    legacyScenario({}, Effect.gen(function*() {
      const aliceId = legacyIdentity()
      const captured = registerPayload("alice", aliceId)
      const bob = yield* registered("bob")
      const mallory = yield* legacyClient()
      expect((yield* mallory.request("register", captured)).type).toBe("register")
      // Alice comes (back) online: hers is the newest registration of the id's signing key.
      const alice = yield* legacyClient(aliceId)
      expect(yield* alice.register("alice")).toEqual({ type: "register", payload: { success: true, clientId: "alice" } })
      expect(errorOf(yield* mallory.next())).toEqual(["SESSION_REPLACED", "Client ID alice was registered again from another connection"])
      expect(yield* mallory.socket.closed).toEqual({ code: 4001, reason: "Replaced by a newer registration of the same client ID" })
      // The id never went offline, so no peer_disconnected; messages now reach Alice.
      yield* bob.message("alice", "for alice")
      expect(yield* alice.next()).toMatchObject({ type: "message", payload: { message: sealed("for alice"), fromId: "bob" } })
      yield* bob.nothing()
    })), TIMEOUT)

  test("4: messages not yet written to a replaced session reach the session that took its id over", () =>
    legacyScenario({}, Effect.gen(function*() {
      const bobId = legacyIdentity()
      const alice = yield* registered("alice")
      const old = yield* registered("bob", bobId)
      yield* old.socket.pause
      yield* alice.message("bob", "first") // written, then the writer waits for drain
      yield* alice.message("bob", "second") // stays in the outbox
      yield* alice.nothing()
      const now = yield* legacyClient(bobId)
      expect((yield* now.register("bob")).type).toBe("register")
      const texts: Array<string> = []
      while (texts.at(-1) !== "second") {
        const m = yield* now.next()
        texts.push(Buffer.from(m.payload.message.serializedEncryptedData, "base64").toString().slice(5))
      }
      expect([["second"], ["first", "second"]]).toContainEqual(texts)
      yield* now.nothing()
      yield* alice.nothing()
    })), TIMEOUT)

  test("4: after a challenge-signed registration, captured proofs of that id (static or challenged) are refused and its queue stays its own", () =>
    legacyScenario({}, Effect.gen(function*() {
      const aliceId = legacyIdentity()
      const alice = yield* legacyClient(aliceId)
      const staticFrame = registerPayload("alice", aliceId)
      const first = yield* challengeRegister(alice, "alice")
      expect(first.reply).toEqual({ type: "register", payload: { success: true, clientId: "alice" } })
      yield* alice.socket.close
      const bob = yield* registered("bob")
      yield* bob.message("alice", "queued for alice")
      expect((yield* bob.next()).type).toBe("message_queued")

      const mallory = yield* legacyClient()
      expect(errorOf(yield* mallory.request("register", staticFrame))).toEqual([
        "INVALID_PROOF",
        "Client ID alice requires a challenge-signed registration"
      ])
      // The whole captured challenged frame: its nonce was this node's, for another connection, once.
      expect(errorOf(yield* mallory.request("register", first.payload))).toEqual([
        "INVALID_PROOF",
        "Unknown or used challenge: ask `challenge` again before registering"
      ])
      const ch = yield* mallory.request("challenge", {})
      expect(errorOf(yield* mallory.request("register", first.payload))[0]).toBe("INVALID_PROOF")
      // A nonce serves one attempt: the right answer after a wrong one needs a new challenge.
      const late = { ...first.payload, challenge: { ...first.payload.challenge, nonce: ch.payload.nonce } }
      expect(errorOf(yield* mallory.request("register", late))).toEqual([
        "INVALID_PROOF",
        "Unknown or used challenge: ask `challenge` again before registering"
      ])
      yield* mallory.nothing()

      // A proof for another node does not register here.
      const elsewhere = yield* legacyClient(aliceId)
      expect(errorOf((yield* challengeRegister(elsewhere, "alice", aliceId, "ab".repeat(1952))).reply)).toEqual([
        "INVALID_PROOF",
        "Invalid challenge signature"
      ])
      const back = yield* legacyClient(aliceId)
      expect((yield* challengeRegister(back, "alice")).reply.type).toBe("register")
      expect(yield* back.next()).toMatchObject({ type: "message", payload: { message: sealed("queued for alice"), fromId: "bob" } })
    })), TIMEOUT)

  test("4: LEGACY_REQUIRE_CHALLENGE refuses every static proof; the challenge still registers", () =>
    legacyScenario({ legacyRequireChallenge: true }, Effect.gen(function*() {
      const c = yield* legacyClient()
      expect(errorOf(yield* c.register("carol"))).toEqual([
        "INVALID_PROOF",
        "This node requires a challenge-signed registration (see `challenge`)"
      ])
      expect((yield* challengeRegister(c, "carol")).reply).toEqual({ type: "register", payload: { success: true, clientId: "carol" } })
    })), TIMEOUT)

  test("12: without a valid proof a register tells nothing of who is online or which ids exist", () =>
    legacyScenario({}, Effect.gen(function*() {
      yield* registered("alice")
      const bob = yield* registered("bob")
      yield* bob.socket.close
      const probe = yield* legacyClient()
      // A proof under a key that did not sign it: free to make, for any id.
      const forged = {
        ...verification(probe.id),
        serializedPublicKey: verification(legacyIdentity()).serializedPublicKey
      }
      const answers = []
      for (const clientId of ["alice", "bob", "nobody"]) {
        answers.push(errorOf(yield* probe.request("register", { ...registerPayload(clientId, probe.id), verification: forged })))
      }
      expect(answers).toEqual([
        ["INVALID_PROOF", "Invalid proof"],
        ["INVALID_PROOF", "Invalid proof"],
        ["INVALID_PROOF", "Invalid proof"]
      ])
    })), TIMEOUT)

  test("12: clientIds are NFKC-normalised to a documented ASCII set; look-alikes, zero-width and control characters are refused", () =>
    legacyScenario({}, Effect.gen(function*() {
      const aliceId = legacyIdentity()
      const alice = yield* registered("alice", aliceId)
      const mallory = yield* legacyClient()
      const refused = [
        "\u0430lice", // Cyrillic a
        "ali\u200bce", // zero-width space
        "alice\u001b[2J", // terminal escape
        "al ice",
        "x".repeat(129)
      ]
      for (const clientId of refused) {
        expect(errorOf(yield* mallory.register(clientId))).toEqual([
          "INVALID_MESSAGE",
          "Invalid client ID (1-128 characters of A-Z a-z 0-9 . _ - @ : + (after NFKC normalisation))"
        ])
      }
      // Full-width letters are the same id as their ASCII form, so they belong to its owner.
      expect(errorOf(yield* mallory.register("\uff41\uff4c\uff49\uff43\uff45"))).toEqual([
        "CLIENT_ID_TAKEN",
        "Client ID alice is already taken"
      ])
      // The forms the SDK's users have: names, UUIDs, hex addresses, e-mail-like ids.
      for (const clientId of ["Bob_2", "6f1c2a9e-3b1d-4c55-9d2a-0b8e7c1f4a21", `0x${"ab".repeat(32)}`, "carol@example.org"]) {
        const c = yield* legacyClient()
        expect(yield* c.register(clientId)).toEqual({ type: "register", payload: { success: true, clientId } })
      }
      expect((yield* alice.request("discover", {})).payload.peers).toEqual([
        "alice",
        "Bob_2",
        "6f1c2a9e-3b1d-4c55-9d2a-0b8e7c1f4a21",
        `0x${"ab".repeat(32)}`,
        "carol@example.org"
      ])
      // Targets are read the same way: a look-alike cannot even be addressed.
      expect(errorOf(yield* alice.request("request_public_key", { targetId: "\u0430lice" }))[0]).toBe("PEER_NOT_FOUND")
      const k = yield* alice.request("request_public_key", { targetId: "\uff41lice" })
      expect(k).toEqual({ type: "public_key_response", payload: { peerId: "\uff41lice", publicKey: Array.from(aliceId.publicKey) } })
    })), TIMEOUT)

  test("7: messages are rate-limited and quota-bound per signing key across its clientIds, which are bounded in number", () =>
    legacyScenario({
      legacyClientIdsPerKey: 2,
      legacyLimits: { ...defaultLimits, rateLimitBurst: 3, rateLimitPerSec: 1, epochQuota: 5, epochSeconds: 60 }
    }, Effect.gen(function*() {
      const spammer = legacyIdentity()
      const bob = yield* registered("bob")
      const m1 = yield* registered("m1", spammer)
      const m2 = yield* registered("m2", spammer)
      const m3 = yield* legacyClient(spammer)
      expect(errorOf(yield* m3.register("m3"))).toEqual(["RATE_LIMITED", "This signing key holds the most client IDs allowed (2)"])
      const rate = ["RATE_LIMITED", "Rate limit exceeded (1 messages/s)"]
      const quota = ["RATE_LIMITED", "Quota exceeded (5 messages per 60 s)"]
      const received = Effect.gen(function*() {
        const m = yield* bob.next()
        expect(m.type).toBe("message")
        return m.payload.message.serializedCipherText
      })
      for (const text of ["a", "b", "c"]) yield* m1.message("bob", text)
      for (let i = 0; i < 3; i++) yield* received
      yield* m1.nothing()
      yield* m1.message("bob", "d")
      expect(errorOf(yield* m1.next())).toEqual(rate)
      // Another clientId of the same key shares the bucket.
      yield* m2.message("bob", "e")
      expect(errorOf(yield* m2.next())).toEqual(rate)
      yield* TestClock.adjust("2 seconds")
      yield* m2.message("bob", "f")
      yield* m2.message("bob", "g")
      for (let i = 0; i < 2; i++) yield* received
      yield* m2.nothing()
      yield* TestClock.adjust("10 seconds")
      yield* m1.message("bob", "h")
      expect(errorOf(yield* m1.next())).toEqual(quota)
      // Other keys are not affected.
      const other = yield* registered("other")
      yield* other.message("bob", "i")
      yield* received
      yield* other.nothing()
      yield* bob.nothing()
      yield* TestClock.adjust("60 seconds")
      yield* m1.message("bob", "j")
      yield* received
      yield* m1.nothing()
    })), TIMEOUT)
})
