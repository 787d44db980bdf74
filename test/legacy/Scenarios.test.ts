import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { ServerQuestions } from "../../src/legacy/ServerQuestions.ts"
import { LegacyStorage } from "../../src/legacy/LegacyStorage.ts"
import { messageHash } from "../../src/legacy/handlers/Message.ts"
import * as Crypto from "../../src/crypto/Crypto.ts"
import { MemoryTransport } from "../../src/transport/MemoryTransport.ts"
import { L2PS_STATUS, MESSAGES } from "../../src/storage/MessageRow.ts"
import { migratedPglite } from "../support/TestNode.ts"
import { legacyClient, legacyIdentity, legacyScenario, registered, sealed } from "./LegacyTestClient.ts"

const queuedReply = (targetId: string) => ({
  type: "message_queued",
  payload: { targetId, status: "offline", message: "Message stored for offline delivery" }
})

interface Row {
  l2ps_uid: string
  from_key: string
  to_key: string
  message_hash: string
  encrypted: any
  ts: number
  delivery_status: string
  send_outcome: string
  l2ps_status: string
}

const legacyRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<Row>`SELECT m.l2ps_uid, m.from_key, m.to_key, m.message_hash, m.encrypted, m.ts, m.delivery_status, m.send_outcome,
             ${sql.literal(L2PS_STATUS)} AS l2ps_status
           FROM ${sql.literal(MESSAGES)} WHERE m.l2ps_uid = 'legacy' ORDER BY m.id`)

const TIMEOUT = 30_000

describe("legacy TestClock scenarios", () => {
  test("offline store: queued for a known owner, delivered right after its next register, oldest first", () =>
    legacyScenario({}, Effect.gen(function*() {
      const bobId = legacyIdentity()
      const bob = yield* registered("bob", bobId)
      yield* bob.socket.close
      const alice = yield* registered("alice")
      for (const text of ["one", "two", "three"]) {
        yield* alice.message("bob", text)
        expect(yield* alice.next()).toEqual(queuedReply("bob"))
        yield* TestClock.adjust("1 second")
      }
      const back = yield* legacyClient(bobId)
      expect(yield* back.register("bob")).toEqual({ type: "register", payload: { success: true, clientId: "bob" } })
      const stamps: Array<number> = []
      for (const text of ["one", "two", "three"]) {
        const m = yield* back.next()
        expect(m).toEqual({ type: "message", payload: { message: sealed(text), fromId: "alice", timestamp: expect.any(Number) } })
        stamps.push(m.payload.timestamp)
      }
      expect(stamps[0]! < stamps[1]! && stamps[1]! < stamps[2]!).toBe(true)
      yield* back.nothing()
      // Handed over once: the next registration gets nothing again.
      yield* back.socket.close
      const again = yield* legacyClient(bobId)
      yield* again.register("bob")
      yield* again.nothing()
      const rows = yield* legacyRows
      expect(rows.map((r) => [r.from_key, r.to_key, r.delivery_status, r.send_outcome, r.l2ps_status])).toEqual([
        ["alice", "bob", "sent", "queued", "l2ps_pending"],
        ["alice", "bob", "sent", "queued", "l2ps_pending"],
        ["alice", "bob", "sent", "queued", "l2ps_pending"]
      ])
      // The server's hash of §1.9 over the message, the two ids and the stored timestamp.
      const crypto = yield* Crypto.Crypto
      for (const r of rows) {
        expect(r.message_hash).toBe(messageHash(crypto, { message: r.encrypted, senderId: "alice", targetId: "bob", timestamp: Number(r.ts) }))
      }
    })), TIMEOUT)

  test("no frame is pushed between a request and its reply: queued and live messages wait for idle", () =>
    legacyScenario({}, Effect.gen(function*() {
      const bobId = legacyIdentity()
      yield* Effect.flatMap(registered("bob", bobId), (b) => b.socket.close)
      const alice = yield* registered("alice")
      const carol = yield* registered("carol")
      yield* alice.message("bob", "queued-1")
      expect((yield* alice.next()).type).toBe("message_queued")
      yield* alice.message("bob", "queued-2")
      expect((yield* alice.next()).type).toBe("message_queued")

      // Bob registers and at once asks for an offline key (a storage read) and discovers, while carol
      // writes to him: his two replies come first, in order, then the stored messages, then carol's.
      const back = yield* legacyClient(bobId)
      yield* back.register("bob")
      yield* back.send("request_public_key", { targetId: "carol-offline-never" })
      yield* back.send("discover", {})
      // Timestamps increase per conversation (SECURITY.md 5): across senders, order is the clock's, so
      // carol writes a little later than alice's two messages (the second of which was stamped +1 ms).
      yield* TestClock.adjust(5)
      yield* carol.message("bob", "live")
      expect((yield* back.next()).payload.errorType).toBe("PEER_NOT_FOUND")
      expect(yield* back.next()).toEqual({ type: "discover", payload: { peers: ["alice", "carol", "bob"] } })
      const texts: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const m = yield* back.next()
        expect(m.type).toBe("message")
        texts.push(Buffer.from(m.payload.message.serializedEncryptedData, "base64").toString().slice(5))
      }
      expect(texts).toEqual(["queued-1", "queued-2", "live"])
      yield* back.nothing()
      yield* carol.nothing()
    })), TIMEOUT)

  test("replies keep request order when one waits on storage (DECISIONS legacy rule 7)", () =>
    legacyScenario({}, Effect.gen(function*() {
      const ownerId = legacyIdentity()
      yield* Effect.flatMap(registered("offline-owner", ownerId), (c) => c.socket.close)
      const a = yield* registered("a")
      const sent = ["request_public_key", "discover", "request_public_key", "debug_question", "discover"]
      yield* a.send("request_public_key", { targetId: "offline-owner" })
      yield* a.send("discover", {})
      yield* a.send("request_public_key", { targetId: "a" })
      yield* a.send("debug_question", {})
      yield* a.send("discover", {})
      const got: Array<string> = []
      for (let i = 0; i < sent.length; i++) got.push((yield* a.next()).type)
      expect(got).toEqual(["public_key_response", "discover", "public_key_response", "server_question", "discover"])
      yield* a.nothing()
    })), TIMEOUT)

  test("the offline cap counts queued messages per sender in storage, across recipients", () =>
    legacyScenario({ legacyOfflinePerSender: 3 }, Effect.gen(function*() {
      const xId = legacyIdentity()
      yield* Effect.flatMap(registered("x", xId), (c) => c.socket.close)
      yield* Effect.flatMap(registered("y"), (c) => c.socket.close)
      const s = yield* registered("sender")
      for (const to of ["x", "y", "x"]) {
        yield* s.message(to)
        expect((yield* s.next()).type).toBe("message_queued")
      }
      yield* s.message("y")
      expect(yield* s.next()).toMatchObject({
        type: "error",
        payload: {
          errorType: "INTERNAL_ERROR",
          details: "Offline message limit reached (3 messages). Please wait for recipient to come online."
        }
      })
      expect(yield* (yield* LegacyStorage).queuedFrom("sender")).toBe(3)
      // x comes back and takes its two: the sender may queue again.
      const x = yield* legacyClient(xId)
      yield* x.register("x")
      yield* x.next()
      yield* x.next()
      yield* TestClock.adjust(1)
      yield* s.message("y")
      expect((yield* s.next()).type).toBe("message_queued")
      // A live recipient is no offline queue: no cap, no reply.
      for (let i = 0; i < 5; i++) yield* s.message("x")
      for (let i = 0; i < 5; i++) expect((yield* x.next()).type).toBe("message")
      yield* s.nothing()
    })), TIMEOUT)

  test("queued messages survive a restart of the node", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Layer.build(migratedPglite())
      const sql = Layer.succeedContext(db)
      const bobId = legacyIdentity()
      yield* Effect.promise(() =>
        legacyScenario({}, Effect.gen(function*() {
          yield* Effect.flatMap(registered("bob", bobId), (b) => b.socket.close)
          const alice = yield* registered("alice")
          yield* alice.message("bob", "before restart")
          expect((yield* alice.next()).type).toBe("message_queued")
        }), sql)
      )
      yield* Effect.promise(() =>
        legacyScenario({}, Effect.gen(function*() {
          const bob = yield* legacyClient(bobId)
          expect((yield* bob.register("bob")).type).toBe("register")
          expect(yield* bob.next()).toMatchObject({ type: "message", payload: { fromId: "alice", message: sealed("before restart") } })
          // The binding survived too.
          const impostor = yield* legacyClient()
          expect((yield* impostor.register("alice")).payload.errorType).toBe("CLIENT_ID_TAKEN")
        }), sql)
      )
    }))), TIMEOUT)

  test("a live message whose recipient leaves before it is written goes back to the queue", () =>
    legacyScenario({}, Effect.gen(function*() {
      const bobId = legacyIdentity()
      const alice = yield* registered("alice")
      const bob = yield* registered("bob", bobId)
      yield* bob.socket.pause
      yield* alice.message("bob", "first") // written, then the writer waits for drain
      yield* alice.message("bob", "second") // stays in the outbox
      yield* alice.nothing()
      yield* bob.socket.close
      expect(yield* alice.next()).toEqual({ type: "peer_disconnected", payload: { peerId: "bob" } })
      const back = yield* legacyClient(bobId)
      yield* back.register("bob")
      // "second" never reached the socket; "first" did (unless bob was still catching up, when it is
      // only marked once written): whatever was not surely written comes again, in order.
      const texts: Array<string> = []
      while (texts.at(-1) !== "second") {
        const m = yield* back.next()
        texts.push(Buffer.from(m.payload.message.serializedEncryptedData, "base64").toString().slice(5))
      }
      expect([["second"], ["first", "second"]]).toContainEqual(texts)
      yield* back.nothing()
    })), TIMEOUT)

  test("ServerQuestions.ask: the answer comes back; a timeout on the Clock; unknown and leaving peers", () =>
    legacyScenario({}, Effect.gen(function*() {
      const questions = yield* ServerQuestions
      const p = yield* registered("peer")
      const asking = yield* Effect.fork(questions.ask("peer", { text: "ready?" }))
      const q = yield* p.next()
      expect(q.type).toBe("server_question")
      expect(q.payload.question).toEqual({ text: "ready?" })
      yield* p.send("peer_response", { questionId: q.payload.questionId, response: { ok: true } })
      expect(yield* Fiber.join(asking)).toEqual({ ok: true })
      yield* p.nothing()

      const slow = yield* Effect.fork(questions.ask("peer", "still there?", { timeout: "5 seconds" }))
      const q2 = yield* p.next()
      yield* TestClock.adjust("5 seconds")
      const timedOut = yield* Fiber.await(slow)
      expect(Exit.isFailure(timedOut) && JSON.stringify(timedOut.cause)).toContain("Timeout")
      // A late answer is refused with one error.
      yield* p.send("peer_response", { questionId: q2.payload.questionId, response: "late" })
      expect((yield* p.next()).payload.errorType).toBe("INVALID_MESSAGE")

      const nobody = yield* Effect.flip(questions.ask("nobody", "?"))
      expect(nobody.reason).toBe("PeerNotFound")
      const leaving = yield* Effect.fork(questions.ask("peer", "bye?"))
      yield* p.next()
      yield* p.socket.close
      const gone = yield* Effect.flip(Fiber.join(leaving))
      expect(gone.reason).toBe("Disconnected")
    })), TIMEOUT)

  test("a question waits while the peer has a request in flight", () =>
    legacyScenario({}, Effect.gen(function*() {
      const questions = yield* ServerQuestions
      const ownerId = legacyIdentity()
      yield* Effect.flatMap(registered("away", ownerId), (c) => c.socket.close)
      const p = yield* registered("busy")
      yield* p.send("request_public_key", { targetId: "away" })
      const asking = yield* Effect.fork(questions.ask("busy", "now?"))
      expect((yield* p.next()).type).toBe("public_key_response")
      const q = yield* p.next()
      expect(q.type).toBe("server_question")
      yield* p.send("peer_response", { questionId: q.payload.questionId, response: 42 })
      expect(yield* Fiber.join(asking)).toBe(42)
    })), TIMEOUT)

  test("legacy messages enter the batch pipeline as network `legacy`", () =>
    legacyScenario({ maxBatchSize: 2 }, Effect.gen(function*() {
      const a = yield* registered("a")
      const b = yield* registered("b")
      yield* a.message("b", "1")
      yield* b.next()
      yield* b.message("a", "2")
      yield* a.next()
      let statuses: Array<string> = ["l2ps_pending"]
      for (let i = 0; i < 50 && statuses.includes("l2ps_pending"); i++) {
        yield* TestClock.adjust(10)
        statuses = (yield* legacyRows).map((r) => r.l2ps_status)
      }
      expect(statuses).toHaveLength(2)
      expect(statuses.every((s) => s !== "l2ps_pending")).toBe(true)
      // Live, or from storage when the recipient was still catching up right after registering.
      for (const r of yield* legacyRows) expect(["delivered", "sent"]).toContain(r.delivery_status)
    })), TIMEOUT)
})

describe("legacy per-address limits", () => {
  test("shared with the L2PS server: connections past the cap are closed; registrations past the bucket are RATE_LIMITED", () =>
    legacyScenario({ maxConnectionsPerAddress: 3, registrationBurstPerAddress: 2, registrationRatePerAddress: 1 }, Effect.gen(function*() {
      const l2ps = yield* (yield* MemoryTransport).connect("10.0.0.1")
      const a = yield* legacyClient(undefined, "10.0.0.1")
      const b = yield* legacyClient(undefined, "10.0.0.1")
      const refused = yield* legacyClient(undefined, "10.0.0.1")
      expect(yield* refused.socket.closed).toEqual({ code: 1008, reason: "Too many connections from this address" })
      expect(yield* a.register("a1")).toEqual({ type: "register", payload: { success: true, clientId: "a1" } })
      expect(yield* b.register("b1")).toEqual({ type: "register", payload: { success: true, clientId: "b1" } })
      const other = yield* legacyClient(undefined, "10.0.0.2")
      expect(yield* other.register("o1")).toEqual({ type: "register", payload: { success: true, clientId: "o1" } })
      const c = yield* legacyClient(undefined, "10.0.0.2")
      yield* l2ps.close
      const d = yield* legacyClient(undefined, "10.0.0.1")
      expect(yield* d.register("d1")).toMatchObject({ type: "error", payload: { errorType: "RATE_LIMITED", details: "Too many registrations from this address" } })
      yield* TestClock.adjust("1 second")
      expect(yield* d.register("d1")).toEqual({ type: "register", payload: { success: true, clientId: "d1" } })
      yield* c.nothing()
    })), TIMEOUT)
})

describe("legacy byte budget", () => {
  test("live messages for a stalled peer stop at the byte budget, wait in storage and arrive in order", () =>
    legacyScenario({ sessionOutboxBytes: 20_000 }, Effect.gen(function*() {
      const bob = yield* registered("bob")
      const alice = yield* registered("alice")
      yield* bob.socket.pause
      const big = "y".repeat(3000) // ~8 KB frames once sealed and base64-encoded twice
      const texts = Array.from({ length: 10 }, (_, i) => `${i}:${big}`)
      for (const text of texts) yield* alice.message("bob", text)
      yield* alice.nothing()
      const rows = yield* legacyRows
      const live = rows.filter((r) => r.delivery_status === "delivered").length
      // A few fit the 20 KB budget; the rest wait in storage (no count limit is near: 512 frames).
      expect(live).toBeGreaterThanOrEqual(1)
      expect(live).toBeLessThanOrEqual(4)
      expect(rows.length).toBe(10)
      yield* bob.socket.resume
      for (const text of texts) {
        expect(yield* bob.next()).toMatchObject({ type: "message", payload: { message: sealed(text), fromId: "alice" } })
      }
      yield* bob.nothing()
    })), TIMEOUT)
})
