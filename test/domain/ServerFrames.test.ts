import { expect, test } from "bun:test"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { MessageHash, PublicKey } from "../../src/domain/Ids.ts"
import { encodePayload, ServerFrame } from "../../src/domain/ServerFrames.ts"

const KEY = "ab".repeat(32)

test("a reply built through its Schema: what the Schema refuses is a defect where it is built", () => {
  expect(encodePayload("public_key_response", { targetId: KEY, publicKey: PublicKey.make(KEY) })).toEqual({ targetId: KEY, publicKey: KEY })
  // a brand forced past its check (as a cast would) is still caught when the reply is built
  const forged = "not a key" as PublicKey
  expect(() => encodePayload("public_key_response", { targetId: KEY, publicKey: forged })).toThrow("Expected a string matching the pattern")
  const hash = MessageHash.make("h")
  expect(() => encodePayload("proof_response", { messageHash: hash, leaf: "l", batch: null, path: [{ hash: "x", side: "up" as "left" }] })).toThrow()
})

test("ServerFrame: a frame is its type's payload, with the node's timestamp", () => {
  const ok = { type: "peer_left", payload: { publicKey: KEY }, timestamp: 1 }
  const decode = Schema.decodeUnknownEither(ServerFrame)
  expect(Either.isRight(decode(ok))).toBe(true)
  expect(Either.isRight(decode({ ...ok, requestId: "r1" }))).toBe(true)
  expect(Either.isLeft(decode({ ...ok, type: "peer_joined", payload: { publicKey: "p1" } }))).toBe(true)
  expect(Either.isLeft(decode({ ...ok, type: "registered" }))).toBe(true)
  expect(Either.isLeft(decode({ type: "peer_left", payload: { publicKey: KEY } }))).toBe(true)
  expect(Either.isLeft(decode({ ...ok, type: "unknown" }))).toBe(true)
  // message hashes are at most 256 characters of storable text
  const delivered = { type: "message_delivered", timestamp: 1 }
  expect(Either.isRight(decode({ ...delivered, payload: { messageHash: "h".repeat(256), at: 1 } }))).toBe(true)
  expect(Either.isLeft(decode({ ...delivered, payload: { messageHash: "h".repeat(257), at: 1 } }))).toBe(true)
  expect(Either.isLeft(decode({ ...delivered, payload: { messageHash: "h\u0000", at: 1 } }))).toBe(true)
})
