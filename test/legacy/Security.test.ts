/**
 * Attacks on the legacy signaling server from the security review (issue 13: findings 4, 7 legacy
 * part, 12), each performed as a client would, over memory sockets on TestClock.
 */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { legacyClient, legacyIdentity, legacyScenario, registered, registerPayload, verification } from "./LegacyTestClient.ts"

const TIMEOUT = 30_000

const errorOf = (frame: { type: string; payload: any }) =>
  frame.type === "error" ? [frame.payload.errorType, frame.payload.details] : [frame.type, frame.payload]

describe("legacy security (issue 13)", () => {
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
})
