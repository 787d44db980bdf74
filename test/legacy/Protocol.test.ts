import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import {
  legacyClient,
  legacyIdentity,
  legacyScenario,
  registered,
  registerPayload,
  sealed,
  verification
} from "./LegacyTestClient.ts"

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** The one error frame a bad request gets. */
const expectError = (frame: { type: string; payload: any }, errorType: string, details?: string) => {
  expect(frame.type).toBe("error")
  expect(Object.keys(frame).sort()).toEqual(["payload", "type"])
  expect(Object.keys(frame.payload).sort()).toEqual(["details", "errorType", "timestamp"])
  expect(frame.payload.errorType).toBe(errorType)
  expect(frame.payload.timestamp).toMatch(ISO)
  if (details !== undefined) expect(frame.payload.details).toBe(details)
}

const TIMEOUT = 30_000

describe("legacy signaling protocol on NodeCore (in memory)", () => {
  test("register, discover, request_public_key, and a relayed message with no ack to the sender", () =>
    legacyScenario({}, Effect.gen(function*() {
      const alice = yield* legacyClient()
      const raw = yield* Effect.zipRight(alice.send("register", registerPayload("alice", alice.id)), alice.nextRaw())
      expect(raw).toBe(`{"type":"register","payload":{"success":true,"clientId":"alice"}}`)
      const bob = yield* registered("bob")
      expect(yield* alice.request("discover", {})).toEqual({ type: "discover", payload: { peers: ["alice", "bob"] } })
      const key = yield* bob.request("request_public_key", { targetId: "alice" })
      expect(key).toEqual({ type: "public_key_response", payload: { peerId: "alice", publicKey: Array.from(alice.id.publicKey) } })

      const object = { ...sealed("hello"), extra: { nested: [1, "two"] } }
      yield* bob.send("message", { targetId: "alice", message: object })
      expect(yield* alice.next()).toEqual({ type: "message", payload: { message: object, fromId: "bob" } })
      yield* bob.nothing()
      // Self-send is allowed, as in the reference.
      yield* alice.message("alice", "me")
      expect(yield* alice.next()).toMatchObject({ type: "message", payload: { fromId: "alice", message: sealed("me") } })
    })), TIMEOUT)

  test("requests before register get REGISTRATION_REQUIRED, one error each", () =>
    legacyScenario({}, Effect.gen(function*() {
      const c = yield* legacyClient()
      expectError(yield* c.request("discover", {}), "REGISTRATION_REQUIRED", "You must register before discovering peers")
      expectError(
        yield* c.request("request_public_key", { targetId: "x" }),
        "REGISTRATION_REQUIRED",
        "You must register before requesting public keys"
      )
      expectError(
        yield* c.request("message", { targetId: "x", message: sealed("m") }),
        "REGISTRATION_REQUIRED",
        "You must register before sending messages"
      )
      expectError(
        yield* c.request("debug_question", {}),
        "REGISTRATION_REQUIRED",
        "You must register before sending debug messages"
      )
      yield* c.nothing()
      expect((yield* c.register("late")).type).toBe("register")
    })), TIMEOUT)

  test("register refusals: schema, public key, proof binding, algorithm, encoding (one error frame each)", () =>
    legacyScenario({}, Effect.gen(function*() {
      const id = legacyIdentity()
      const c = yield* legacyClient(id)
      const good = registerPayload("carol", id)
      // The SDK's register() sends no verification: one error, not the reference's two.
      expectError(
        yield* c.request("register", { clientId: "carol", publicKey: good.publicKey }),
        "INVALID_MESSAGE",
        "Invalid message schema"
      )
      yield* c.nothing()
      expectError(yield* c.request("register", { ...good, clientId: "" }), "INVALID_MESSAGE", "Invalid message schema")
      for (const publicKey of [[], good.publicKey.slice(1), good.publicKey.map((b) => b + 256), "AAAA", null]) {
        expectError(yield* c.request("register", { ...good, publicKey }), "INVALID_PUBLIC_KEY", "Invalid public key format")
      }
      const other = new Uint8Array(1184).fill(1)
      expectError(
        yield* c.request("register", { ...good, verification: verification(id, other) }),
        "INVALID_PROOF",
        "The proof must sign the registered public key"
      )
      const forged = { ...good.verification, serializedPublicKey: verification(legacyIdentity()).serializedPublicKey }
      expectError(yield* c.request("register", { ...good, verification: forged }), "INVALID_PROOF", "Invalid proof")
      expectError(
        yield* c.request("register", { ...good, verification: { ...good.verification, algorithm: "ed25519" } }),
        "INVALID_PROOF",
        "Unsupported proof algorithm (expected ml-dsa)"
      )
      expectError(
        yield* c.request("register", { ...good, verification: { ...good.verification, serializedSignedData: "%%%" } }),
        "INVALID_PROOF",
        "Invalid proof encoding"
      )
      yield* c.nothing()
      expect(yield* c.request("register", good)).toEqual({ type: "register", payload: { success: true, clientId: "carol" } })
      // Registering again as the same id on the same socket is harmless; another id is refused.
      expect((yield* c.request("register", good)).type).toBe("register")
      expectError(
        yield* c.request("register", registerPayload("other", id)),
        "INVALID_MESSAGE",
        "This connection is already registered as carol"
      )
    })), TIMEOUT)

  test("a clientId belongs to its first signing key, online and offline; its owner comes back", () =>
    legacyScenario({}, Effect.gen(function*() {
      const owner = legacyIdentity()
      const first = yield* registered("dave", owner)
      const impostor = yield* legacyClient()
      expectError(yield* impostor.register("dave"), "CLIENT_ID_TAKEN", "Client ID dave is already taken")
      // The owner's key from a second socket takes the id over: the first is told and closed.
      const twin = yield* legacyClient(owner)
      expect(yield* twin.register("dave")).toMatchObject({ type: "register" })
      expectError(yield* first.next(), "SESSION_REPLACED", "Client ID dave was registered again from another connection")
      expect(yield* first.socket.closed).toEqual({ code: 4001, reason: "Replaced by a newer registration of the same client ID" })
      yield* twin.socket.close
      // Offline: the reference would let anyone take it; the binding is in storage.
      expectError(yield* impostor.register("dave"), "CLIENT_ID_TAKEN", "Client ID dave is already taken")
      const back = yield* legacyClient(owner)
      const again = yield* back.register("dave")
      expect(again).toMatchObject({ type: "register" })
      yield* impostor.nothing()
    })), TIMEOUT)

  test("request_public_key: a live key, an offline owner's stored key, PEER_NOT_FOUND for unknown ids", () =>
    legacyScenario({}, Effect.gen(function*() {
      const eve = yield* registered("eve")
      const frank = yield* registered("frank")
      yield* frank.socket.close
      yield* eve.next() // peer_disconnected
      expect(yield* eve.request("request_public_key", { targetId: "frank" })).toEqual({
        type: "public_key_response",
        payload: { peerId: "frank", publicKey: Array.from(frank.id.publicKey) }
      })
      expectError(yield* eve.request("request_public_key", { targetId: "nobody" }), "PEER_NOT_FOUND", "Target peer nobody not found")
      expectError(yield* eve.request("request_public_key", {}), "INVALID_MESSAGE", "Missing target ID")
      expectError(
        yield* eve.request("message", { targetId: "nobody", message: sealed("?") }),
        "PEER_NOT_FOUND",
        "Target peer nobody not found"
      )
      expectError(yield* eve.request("message", { targetId: "frank" }), "INVALID_MESSAGE", "Missing required message fields")
      expectError(
        yield* eve.request("message", { targetId: "frank", message: "text" }),
        "INVALID_MESSAGE",
        "Missing required message fields"
      )
    })), TIMEOUT)

  test("peer_disconnected reaches every registered peer, not unregistered sockets", () =>
    legacyScenario({}, Effect.gen(function*() {
      const a = yield* registered("a")
      const b = yield* registered("b")
      const c = yield* registered("c")
      const lurker = yield* legacyClient()
      yield* b.socket.close
      expect(yield* a.next()).toEqual({ type: "peer_disconnected", payload: { peerId: "b" } })
      expect(yield* c.next()).toEqual({ type: "peer_disconnected", payload: { peerId: "b" } })
      yield* lurker.nothing()
      expect((yield* a.request("discover", {})).payload.peers).toEqual(["a", "c"])
    })), TIMEOUT)

  test("bad input gets one error frame and the session goes on", () =>
    legacyScenario({ maxFrameChars: 32_768 }, Effect.gen(function*() {
      const c = yield* registered("bad")
      const cases: Array<[string | Uint8Array, string, string]> = [
        ["{not json", "INVALID_MESSAGE", "Invalid JSON"],
        ["[1,2]", "INVALID_MESSAGE", "Invalid message format"],
        ["\"text\"", "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ payload: {} }), "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ type: "", payload: {} }), "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ type: "discover" }), "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ type: "discover", payload: [] }), "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ type: 7, payload: {} }), "INVALID_MESSAGE", "Invalid message format"],
        [JSON.stringify({ type: "hello", payload: {} }), "INVALID_MESSAGE", "Unknown message type: hello"],
        [JSON.stringify({ type: "__proto__", payload: {} }), "INVALID_MESSAGE", "Unknown message type: __proto__"],
        [JSON.stringify({ type: "x".repeat(40_000), payload: {} }), "INVALID_MESSAGE", "Message too large (max 32768 characters)"],
        [new Uint8Array([0xff, 0xfe, 0x00]), "INVALID_MESSAGE", "Binary frame is not valid UTF-8"],
        [JSON.stringify({ type: "peer_response", payload: { questionId: "nope", response: 1 } }), "INVALID_MESSAGE", "Unknown or expired question nope"]
      ]
      for (const [data, errorType, details] of cases) {
        yield* c.socket.send(data)
        expectError(yield* c.next(), errorType, details)
        yield* c.nothing(20)
      }
      // A binary frame of valid UTF-8 JSON is read like text.
      yield* c.socket.send(new TextEncoder().encode(JSON.stringify({ type: "discover", payload: {} })))
      expect(yield* c.next()).toEqual({ type: "discover", payload: { peers: ["bad"] } })
    })), TIMEOUT)

  test("debug_question gets a server_question; its peer_response is accepted without a reply", () =>
    legacyScenario({}, Effect.gen(function*() {
      const c = yield* registered("curious")
      const q = yield* c.request("debug_question", { anything: true })
      expect(q.type).toBe("server_question")
      expect(q.payload.question).toEqual({ text: "This is a debug question. What is your favorite programming language?" })
      expect(q.payload.questionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      yield* c.send("peer_response", { questionId: q.payload.questionId, response: "TypeScript" })
      yield* c.nothing()
      // Answered once only.
      yield* c.send("peer_response", { questionId: q.payload.questionId, response: "again" })
      expectError(yield* c.next(), "INVALID_MESSAGE")
    })), TIMEOUT)
})
