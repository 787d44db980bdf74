/**
 * Finding 1 of the security review, on the legacy server: a relayed message is stored as jsonb, which
 * refuses some of what `JSON.parse` accepts. Such a message is refused with INVALID_MESSAGE before it is
 * stored or relayed; the session goes on and the recipient gets only the good messages.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { legacyScenario, registered, sealed } from "./LegacyTestClient.ts"

const TIMEOUT = 30_000

test("legacy message: a \\u0000 escape or an unpaired surrogate escape in the message is refused with INVALID_MESSAGE, nothing relayed", () =>
  legacyScenario({}, Effect.gen(function*() {
    const alice = yield* registered("alice")
    const bob = yield* registered("bob")
    const cases: Array<[string, string]> = [
      ['{"algorithm":"ml-kem-aes","serializedCipherText":"Y3Q\\u0000=","serializedEncryptedData":"ZGF0YQ=="}', "a \\u0000 escape (NUL)"],
      ['{"algorithm":"ml-kem-aes","serializedCipherText":"Y3Q=","serializedEncryptedData":"ZGF0YQ==","n\\u0000":1}', "a \\u0000 escape (NUL)"],
      ['{"algorithm":"ml-kem-aes","serializedCipherText":"Y3Q\\udfff=","serializedEncryptedData":"ZGF0YQ=="}', "an unpaired surrogate escape"]
    ]
    for (const [message, refused] of cases) {
      yield* bob.socket.send(`{"type":"message","payload":{"targetId":"alice","message":${message}}}`)
      const reply = yield* bob.next()
      expect(reply).toMatchObject({
        type: "error",
        payload: { errorType: "INVALID_MESSAGE", details: `Message cannot be stored: it holds ${refused}` }
      })
    }
    yield* alice.nothing()
    // The session goes on; a message the client really sends (a paired surrogate, written raw or escaped) is relayed.
    yield* bob.socket.send(`{"type":"message","payload":{"targetId":"alice","message":{"text":"\\ud83d\\ude00 😀"}}}`)
    expect(yield* alice.next()).toEqual({ type: "message", payload: { message: { text: "😀 😀" }, fromId: "bob" } })
    yield* bob.send("message", { targetId: "alice", message: sealed("fine") })
    expect(yield* alice.next()).toEqual({ type: "message", payload: { message: sealed("fine"), fromId: "bob" } })
    yield* bob.nothing()
  })), TIMEOUT)
