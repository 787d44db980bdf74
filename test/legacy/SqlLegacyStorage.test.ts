import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { LegacyStorage, type NewLegacyMessage } from "../../src/legacy/LegacyStorage.ts"
import * as SqlLegacyStorage from "../../src/legacy/SqlLegacyStorage.ts"
import { L2PS_STATUS, MESSAGES } from "../../src/storage/MessageRow.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as Migrator from "@effect/sql/Migrator"
import m0001 from "../../migrations/0001_messages.ts"
import m0002 from "../../migrations/0002_legacy.ts"
import m0003 from "../../migrations/0003_pipeline.ts"
import m0004 from "../../migrations/0004_offline_expiry.ts"
import m0005 from "../../migrations/0005_batch_status.ts"
import m0006 from "../../migrations/0006_conversation_key.ts"
import m0007 from "../../migrations/0007_mempool.ts"
import { databases } from "../support/TestDatabase.ts"

const TIMEOUT = 30_000
const key = (n: number, size: number) => new Uint8Array(size).fill(n)

let seq = 0
const msg = (over: Partial<NewLegacyMessage> = {}): NewLegacyMessage => ({
  from: "alice",
  to: "bob",
  messageHash: `legacy-hash-${++seq}`,
  message: { algorithm: "ml-kem-aes", serializedCipherText: "Y3Q=", serializedEncryptedData: "ZGF0YQ==" },
  timestamp: 1_000 + seq,
  status: "queued",
  outcome: "queued",
  ...over
})

for (const db of await databases()) {
  const run = <A, E>(body: Effect.Effect<A, E, LegacyStorage | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(SqlLegacyStorage.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<A, E>
    )

  const opts = { challenged: false, maxIdsPerKey: 16, replacedKeysMax: 64 }

  describe(`SqlLegacyStorage on ${db.name}`, () => {
    test("migration 0008 keeps clients bound before it: their signing key is hashed and counted", () =>
      Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Migrator.make({})({
          loader: Migrator.fromRecord({
            "0001_messages": m0001, "0002_legacy": m0002, "0003_pipeline": m0003, "0004_offline_expiry": m0004,
            "0005_batch_status": m0005, "0006_conversation_key": m0006, "0007_mempool": m0007
          })
        })
        const old = { clientId: "old", signingKey: key(51, 1952), publicKey: key(52, 1184), registeredAt: 5 }
        const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
        yield* sql`INSERT INTO legacy_clients (client_id, signing_key, public_key, registered_at, last_seen_at)
          VALUES (${old.clientId}, ${hex(old.signingKey)}, ${hex(old.publicKey)}, 5, 5)`
        yield* Migrations.run
        const s = yield* LegacyStorage
        expect(yield* s.client("old")).toEqual(old)
        expect(yield* s.bind({ ...old, registeredAt: 6 }, opts)).toBe("Bound")
        expect(yield* s.bind({ ...old, clientId: "another", registeredAt: 7 }, { ...opts, maxIdsPerKey: 1 })).toBe("KeyLimit")
      }).pipe(Effect.provide(SqlLegacyStorage.layer.pipe(Layer.provideMerge(db.layer))))), TIMEOUT)

    test("a clientId binds to its first signing key; its owner refreshes the ML-KEM key", () =>
      run(Effect.gen(function*() {
        const s = yield* LegacyStorage
        expect(yield* s.client("alice")).toBeUndefined()
        const owner = { clientId: "alice", signingKey: key(1, 1952), publicKey: key(2, 1184), registeredAt: 10 }
        expect(yield* s.bind(owner, opts)).toBe("Bound")
        expect(yield* s.bind({ ...owner, signingKey: key(9, 1952), publicKey: key(9, 1184), registeredAt: 20 }, opts)).toBe("Taken")
        expect(yield* s.client("alice")).toEqual(owner)
        expect(yield* s.bind({ ...owner, publicKey: key(3, 1184), registeredAt: 30 }, opts)).toBe("Bound")
        const now = yield* s.client("alice")
        expect(now?.publicKey).toEqual(key(3, 1184))
        expect(now?.registeredAt).toBe(10)
      })), TIMEOUT)

    test("replaced ML-KEM keys are refused (the newest replacedKeysMax remembered); challenge and per-key bounds", () =>
      run(Effect.gen(function*() {
        const s = yield* LegacyStorage
        const owner = { clientId: "rot", signingKey: key(41, 1952), publicKey: key(1, 1184), registeredAt: 1 }
        const small = { ...opts, replacedKeysMax: 2 }
        expect(yield* s.bind(owner, small)).toBe("Bound")
        for (const n of [2, 3, 4]) expect(yield* s.bind({ ...owner, publicKey: key(n, 1184) }, small)).toBe("Bound")
        // Keys 2 and 3 are remembered; key 1, the oldest, was forgotten past the bound.
        expect(yield* s.bind({ ...owner, publicKey: key(3, 1184) }, small)).toBe("ReplacedKey")
        expect(yield* s.bind({ ...owner, publicKey: key(2, 1184) }, small)).toBe("ReplacedKey")
        expect((yield* s.client("rot"))?.publicKey).toEqual(key(4, 1184))
        expect(yield* s.bind({ ...owner, publicKey: key(4, 1184) }, small)).toBe("Bound")
        // Once challenged, only challenged registrations bind it.
        expect(yield* s.bind({ ...owner, publicKey: key(4, 1184) }, { ...small, challenged: true })).toBe("Bound")
        expect(yield* s.bind({ ...owner, publicKey: key(4, 1184) }, small)).toBe("ChallengeRequired")
        const many = { signingKey: key(42, 1952), publicKey: key(1, 1184), registeredAt: 1 }
        const two = { ...opts, maxIdsPerKey: 2 }
        expect(yield* s.bind({ ...many, clientId: "m1" }, two)).toBe("Bound")
        expect(yield* s.bind({ ...many, clientId: "m2" }, two)).toBe("Bound")
        expect(yield* s.bind({ ...many, clientId: "m3" }, two)).toBe("KeyLimit")
        // Its existing ids still register.
        expect(yield* s.bind({ ...many, clientId: "m1" }, two)).toBe("Bound")
        // Concurrent first registrations of one key do not pass the bound together.
        const racing = { signingKey: key(43, 1952), publicKey: key(1, 1184), registeredAt: 1 }
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => s.bind({ ...racing, clientId: `r${i}` }, two)),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r === "Bound").length).toBe(2)
      })), TIMEOUT)

    test("messages go to l2ps_messages as network legacy, pending for the pipeline", () =>
      run(Effect.gen(function*() {
        const s = yield* LegacyStorage
        const sql = yield* SqlClient.SqlClient
        const live = msg({ status: "delivered", outcome: "sent" })
        const stored = yield* s.store(live)
        expect(stored._tag).toBe("Stored")
        expect(yield* s.store(live)).toEqual({ _tag: "Duplicate" })
        const rows = yield* sql<Record<string, unknown>>`
          SELECT m.l2ps_uid, m.from_key, m.to_key, m.message_hash, m.encrypted, m.ts::float8 AS ts, m.delivery_status,
                 m.send_outcome, m.delivered_at::float8 AS delivered_at, ${sql.literal(L2PS_STATUS)} AS l2ps_status,
                 m.awaiting_ack
          FROM ${sql.literal(MESSAGES)}`
        expect(rows).toEqual([{
          l2ps_uid: "legacy",
          from_key: "alice",
          to_key: "bob",
          message_hash: live.messageHash,
          encrypted: live.message,
          ts: live.timestamp,
          delivery_status: "delivered",
          send_outcome: "sent",
          delivered_at: live.timestamp,
          l2ps_status: "l2ps_pending",
          awaiting_ack: false
        }])
        // A live message that never reached the socket goes back to the queue, once.
        if (stored._tag === "Stored") yield* s.requeue([stored.id])
        expect((yield* s.queued("bob", undefined, 10)).map((m) => m.id)).toEqual(stored._tag === "Stored" ? [stored.id] : [])
      })), TIMEOUT)

    test("the per-sender cap counts queued messages in storage, across recipients", () =>
      run(Effect.gen(function*() {
        const s = yield* LegacyStorage
        expect((yield* s.store(msg({ to: "bob" }), 2))._tag).toBe("Stored")
        expect((yield* s.store(msg({ to: "carol" }), 2))._tag).toBe("Stored")
        expect(yield* s.store(msg({ to: "dave" }), 2)).toEqual({ _tag: "SenderLimit" })
        // Other senders and live messages are not held back.
        expect((yield* s.store(msg({ from: "zed" }), 2))._tag).toBe("Stored")
        expect((yield* s.store(msg({ status: "delivered", outcome: "sent" })))._tag).toBe("Stored")
        expect(yield* s.queuedFrom("alice")).toBe(2)
        const [first] = yield* s.queued("bob", undefined, 10)
        yield* s.markSent([first!.id], 99)
        expect(yield* s.queuedFrom("alice")).toBe(1)
        expect((yield* s.store(msg({ to: "dave" }), 2))._tag).toBe("Stored")
      })), TIMEOUT)

    test("queued: oldest first per recipient, paged by a (timestamp, id) cursor; markSent only once", () =>
      run(Effect.gen(function*() {
        const s = yield* LegacyStorage
        const sent = [msg({ timestamp: 5 }), msg({ timestamp: 5 }), msg({ timestamp: 3 }), msg({ to: "other" })]
        for (const m of sent) yield* s.store(m)
        const page1 = yield* s.queued("bob", undefined, 2)
        expect(page1.map((m) => m.timestamp)).toEqual([3, 5])
        expect(page1[0]).toMatchObject({ from: "alice", message: sent[2]!.message })
        const last = page1[1]!
        const page2 = yield* s.queued("bob", { timestamp: last.timestamp, id: last.id }, 2)
        expect(page2.map((m) => m.timestamp)).toEqual([5])
        yield* s.markSent([...page1, ...page2].map((m) => m.id), 50)
        expect(yield* s.queued("bob", undefined, 10)).toEqual([])
        // Marking twice or requeueing a handed-over message changes nothing.
        yield* s.markSent(page1.map((m) => m.id), 60)
        yield* s.requeue(page1.map((m) => m.id))
        expect(yield* s.queued("bob", undefined, 10)).toEqual([])
        expect((yield* s.queued("other", undefined, 10)).length).toBe(1)
      })), TIMEOUT)
  })
}
