import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import { type CommitRequest, type NewMessage, Storage } from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const C = "c".repeat(64)

let seq = 0
const msg = (over: Partial<NewMessage> = {}): NewMessage => ({
  l2psUid: "net",
  from: A,
  to: B,
  messageHash: `hash-${++seq}`,
  encryptedJson: JSON.stringify({ ciphertext: "Y2lwaGVy", nonce: "bm9uY2U=", extra: { nested: [1, 2] } }),
  timestamp: 1_000 + seq,
  deliveryStatus: "queued",
  awaitingAck: false,
  outcome: "queued",
  ...over
})
const req = (message: NewMessage, pairLimit = 200): CommitRequest => ({ message, pairLimit })

for (const db of await databases()) {
  const run = <A, E>(body: Effect.Effect<A, E, Storage | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(SqlStorage.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<A, E>
    )

  describe(`SqlStorage on ${db.name}`, () => {
    test("commit stores messages; history is newest first with an exclusive `before`", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const batch = [1, 2, 3, 4, 5].map((i) => req(msg({ timestamp: i * 10, deliveryStatus: "delivered", outcome: "sent" })))
        const results = yield* s.commit(batch)
        expect(results.every((r) => r._tag === "Stored")).toBe(true)
        const all = yield* s.history("net", B, A, undefined, 10)
        expect(all.map((m) => m.timestamp)).toEqual([50, 40, 30, 20, 10])
        expect(all[0]).toMatchObject({ from: A, to: B, l2psStatus: "l2ps_pending", l2psTxHash: null, deliveryStatus: "delivered" })
        expect(JSON.parse(all[0]!.encryptedJson)).toEqual(JSON.parse(batch[4]!.message.encryptedJson))
        // Stored as a JSON object, not as JSON text in a string (what a text bound to jsonb would give).
        const sql = yield* SqlClient.SqlClient
        expect(yield* sql`SELECT DISTINCT jsonb_typeof(encrypted) AS t, encrypted->'extra'->'nested'->>1 AS n FROM l2ps_messages`)
          .toEqual([{ t: "object", n: "2" }])
        expect((yield* s.history("net", A, B, 30, 10)).map((m) => m.timestamp)).toEqual([20, 10])
        expect((yield* s.history("net", A, B, undefined, 2)).map((m) => m.timestamp)).toEqual([50, 40])
        // Another network, another conversation: not there.
        expect(yield* s.history("other", A, B, undefined, 10)).toEqual([])
        expect(yield* s.history("net", A, C, undefined, 10)).toEqual([])
        // Failed messages are left out.
        yield* sql`UPDATE l2ps_messages SET delivery_status = 'failed' WHERE ts = 30`
        expect((yield* s.history("net", A, B, undefined, 10)).map((m) => m.timestamp)).toEqual([50, 40, 20, 10])
      })))

    test("duplicates: a retry gets the original outcome, within a batch and across batches", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const first = msg({ deliveryStatus: "delivered", outcome: "sent" })
        const [stored, sameBatch] = yield* s.commit([req(first), req({ ...first, outcome: "queued" })])
        expect(stored!._tag).toBe("Stored")
        expect(sameBatch).toEqual({ _tag: "Duplicate", to: B, outcome: "sent" })
        const [retry] = yield* s.commit([req({ ...first, timestamp: 99_999, deliveryStatus: "queued", outcome: "queued" })])
        expect(retry).toEqual({ _tag: "Duplicate", to: B, outcome: "sent" })
        // A batch of live messages is one INSERT: its conflicts are the duplicates, the rest is stored.
        const fresh = msg({ deliveryStatus: "delivered", outcome: "sent" })
        const mixed = yield* s.commit([req(first), req(fresh), req(fresh)])
        expect(mixed[0]).toEqual({ _tag: "Duplicate", to: B, outcome: "sent" })
        expect(mixed[1]!._tag).toBe("Stored")
        expect(mixed[2]).toEqual({ _tag: "Duplicate", to: B, outcome: "sent" })
        expect((yield* s.history("net", A, B, undefined, 10)).length).toBe(2)
      })))

    test("a messageHash is unique per network and sender: others may use it; the sender reusing it for another recipient is told where it went", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const live = { deliveryStatus: "delivered", outcome: "sent" } as const
        const first = msg(live)
        expect((yield* s.commit([req(first)]))[0]!._tag).toBe("Stored")
        // Another sender, or the same sender in another network, with the same hash: stored, live or queued,
        // in the batch of the original or alone.
        const [otherSender, otherQueued] = yield* s.commit([req({ ...first, from: C }), req({ ...first, from: C, to: A, l2psUid: "x" })])
        expect([otherSender!._tag, otherQueued!._tag]).toEqual(["Stored", "Stored"])
        const [otherNetwork] = yield* s.commit([req({ ...first, l2psUid: "other" })])
        expect(otherNetwork!._tag).toBe("Stored")
        const [queuedOther] = yield* s.commit([req(msg({ from: C, to: A, messageHash: first.messageHash }))])
        expect(queuedOther).toEqual({ _tag: "Duplicate", to: B, outcome: "sent" })
        // The same sender, same hash, another recipient: a duplicate naming the first recipient (refused by
        // the relay), live or pending, across batches and within one.
        expect(yield* s.commit([req({ ...first, to: C })])).toEqual([{ _tag: "Duplicate", to: B, outcome: "sent" }])
        expect(yield* s.commit([req(msg({ messageHash: first.messageHash, to: C }))])).toEqual([{ _tag: "Duplicate", to: B, outcome: "sent" }])
        const fresh = msg()
        expect(yield* s.commit([req(fresh), req({ ...fresh, to: C })])).toEqual([
          { _tag: "Stored", id: expect.any(String), timestamp: expect.any(Number) },
          { _tag: "Duplicate", to: B, outcome: "queued" }
        ])
        expect((yield* s.byHash("net", A, first.messageHash))!.to).toBe(B)
        expect((yield* s.byHash("net", C, first.messageHash))!.to).toBe(B)
        expect((yield* s.byHash("x", C, first.messageHash))!.to).toBe(A)
        expect(yield* s.byHash("net", B, first.messageHash)).toBeUndefined()
        // Acknowledgements are the recipient's, whoever sent the hash: B's ack covers both senders' messages.
        const acked = yield* s.acknowledge("net", B, [first.messageHash], 5)
        expect(acked).toEqual([])
        const queuedA = msg({ to: C })
        const queuedB = msg({ from: B, to: C, messageHash: queuedA.messageHash })
        expect((yield* s.commit([req(queuedA), req(queuedB)])).map((r) => r._tag)).toEqual(["Stored", "Stored"])
        const both = yield* s.acknowledge("net", C, [queuedA.messageHash], 6)
        expect(both.map((a) => a.from).sort()).toEqual([A, B])
      })))

    test("pair limit counts pending messages of the pair in storage, including those awaiting an ack", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const r1 = yield* s.commit([req(msg(), 3), req(msg({ deliveryStatus: "sent", awaitingAck: true, outcome: "sent" }), 3)])
        expect(r1.map((r) => r._tag)).toEqual(["Stored", "Stored"])
        // Delivered messages do not count; other pairs do not count.
        yield* s.commit([req(msg({ deliveryStatus: "delivered", outcome: "sent" }), 3), req(msg({ to: C }), 3)])
        const r2 = yield* s.commit([req(msg(), 3), req(msg(), 3), req(msg({ from: C }), 3)])
        expect(r2.map((r) => r._tag)).toEqual(["Stored", "PairLimit", "Stored"])
        // A retry of a stored pending message is still a duplicate, not a limit.
        const pending = yield* s.pending({ l2psUid: "net", to: B, includeAwaitingAck: false, after: undefined, limit: 10 })
        const [again] = yield* s.commit([req(msg({ messageHash: pending[0]!.messageHash }), 3)])
        expect(again!._tag).toBe("Duplicate")
        // A live message is not limited.
        const [live] = yield* s.commit([req(msg({ deliveryStatus: "delivered", outcome: "sent" }), 3)])
        expect(live!._tag).toBe("Stored")
      })))

    test("byte quotas: what one sender has waiting across recipients, and what waits for one recipient across senders", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const W = msg().encryptedJson.length + 1024
        const quota = { offlineBytesPerSender: 10 * W, offlineBytesPerRecipient: 6 * W }
        const q = (m: NewMessage): CommitRequest => ({ message: m, pairLimit: 200, quota })
        const key = (n: number) => n.toString(16).padStart(64, "e")
        // One sender, fresh recipients: 4 in one batch, 6 more across batches, then no more.
        expect((yield* s.commit([1, 2, 3, 4].map((i) => q(msg({ to: key(i) }))))).map((r) => r._tag)).toEqual(Array(4).fill("Stored"))
        for (let i = 5; i <= 9; i++) expect((yield* s.commit([q(msg({ to: key(i) }))]))[0]!._tag).toBe("Stored")
        const last = yield* s.commit([q(msg({ to: key(10) })), q(msg({ to: key(11) })), q(msg({ to: key(12), deliveryStatus: "sent", awaitingAck: true, outcome: "sent" }))])
        expect(last).toEqual([
          { _tag: "Stored", id: expect.any(String), timestamp: expect.any(Number) },
          { _tag: "SenderQuota", limit: 10 * W },
          { _tag: "SenderQuota", limit: 10 * W }
        ])
        // Another network is another account; live messages and retries are not limited.
        expect((yield* s.commit([q(msg({ to: key(11), l2psUid: "other" }))]))[0]!._tag).toBe("Stored")
        expect((yield* s.commit([q(msg({ to: key(11), deliveryStatus: "delivered", outcome: "sent" }))]))[0]!._tag).toBe("Stored")
        const waiting = yield* s.pending({ l2psUid: "net", to: key(1), includeAwaitingAck: true, after: undefined, limit: 10 })
        expect((yield* s.commit([q(msg({ to: key(1), messageHash: waiting[0]!.messageHash }))]))[0]!._tag).toBe("Duplicate")
        // Handed over (not awaiting an ack): no longer waiting, room again.
        yield* s.markHanded([waiting[0]!.id], false, 1)
        expect((yield* s.commit([q(msg({ to: key(11) }))]))[0]!._tag).toBe("Stored")

        // One recipient, several senders (throwaway keys): 6 messages' worth, then none from anyone.
        const victim = key(99)
        const senders = [1, 2, 3].map((i) => key(100 + i))
        const r1 = yield* s.commit(senders.flatMap((from) => [q(msg({ from, to: victim })), q(msg({ from, to: victim }))]))
        expect(r1.map((r) => r._tag)).toEqual(Array(6).fill("Stored"))
        expect(yield* s.commit([q(msg({ from: key(104), to: victim }))])).toEqual([{ _tag: "RecipientQuota", limit: 6 * W }])
        // Bytes, not messages: with one message's room, a payload larger than one message does not fit.
        const queue = yield* s.pending({ l2psUid: "net", to: victim, includeAwaitingAck: true, after: undefined, limit: 10 })
        yield* s.markHanded([queue[0]!.id], false, 1)
        const big = JSON.stringify({ ciphertext: "Y".repeat(2000), nonce: "bm9uY2U=" })
        expect(yield* s.commit([q(msg({ from: key(104), to: victim, encryptedJson: big }))])).toEqual([{ _tag: "RecipientQuota", limit: 6 * W }])
        expect((yield* s.commit([q(msg({ from: key(104), to: victim }))]))[0]!._tag).toBe("Stored")
        // An acknowledgement frees room too.
        yield* s.markHanded([queue[1]!.id], true, 2)
        expect((yield* s.commit([q(msg({ from: key(105), to: victim }))]))[0]!._tag).toBe("RecipientQuota")
        yield* s.acknowledge("net", victim, [queue[1]!.messageHash], 3)
        expect((yield* s.commit([q(msg({ from: key(105), to: victim }))]))[0]!._tag).toBe("Stored")
      })))

    test("expiry: queued messages past the TTL are deleted once out of the mempool, and so are failed ones", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const sql = yield* SqlClient.SqlClient
        const old = [10, 20, 30].map((ts) => msg({ to: C, timestamp: ts }))
        const fresh = msg({ to: C, timestamp: 50 })
        const delivered = msg({ to: C, timestamp: 15, deliveryStatus: "delivered", outcome: "sent" })
        const results = yield* s.commit([...old, fresh, delivered].map((m) => req(m)))
        const ids = results.map((r) => (r._tag === "Stored" ? Number(r.id) : -1))
        // Still in the mempool: expired (out of history and quotas) but kept for the prover.
        expect(yield* s.expirePending(40)).toEqual({ expired: 3, deleted: 0 })
        expect((yield* s.history("net", A, C, undefined, 10)).map((m) => m.timestamp)).toEqual([50, 15])
        // Batched: deleted, except a member of a batch that keeps no leaf hashes (its proofs need the payload).
        yield* sql`DELETE FROM l2ps_mempool WHERE message_id IN ${sql.in([ids[0]!, ids[1]!, ids[2]!])}`
        yield* sql`INSERT INTO l2ps_batch_messages (message_id, batch_id, leaf) VALUES (${ids[0]!}, 1, 'aa'), (${ids[1]!}, 1, 'bb'), (${ids[2]!}, 2, NULL)`
        // A row failed before this sweep existed goes too.
        yield* sql`DELETE FROM l2ps_mempool WHERE message_id = ${ids[4]!}`
        yield* sql`UPDATE l2ps_messages SET delivery_status = 'failed' WHERE id = ${ids[4]!}`
        expect(yield* s.expirePending(40)).toEqual({ expired: 0, deleted: 3 })
        const left = yield* sql<{ id: string | number; delivery_status: string }>`SELECT id, delivery_status FROM l2ps_messages ORDER BY id`
        expect(left.map((r) => [Number(r.id), r.delivery_status])).toEqual([[ids[2]!, "failed"], [ids[3]!, "queued"]])
        expect(yield* s.expirePending(40)).toEqual({ expired: 0, deleted: 0 })
      })))

    test("waiting: per recipient, in order, whether anything is queued or awaits its ack", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const D = "d".repeat(64)
        const [queued, handed, awaiting] = [msg({ to: C }), msg({ to: D }), msg({ to: B, l2psUid: "other" })]
        yield* s.commit([queued, handed, awaiting, msg({ to: A, from: B, deliveryStatus: "delivered", outcome: "sent" })].map((m) => req(m)))
        const ids = new Map((yield* s.history("net", D, A, undefined, 10)).map((m) => [m.to, m.id]))
        yield* s.markHanded([ids.get(D)!], false, 500)
        const other = (yield* s.pending({ l2psUid: "other", to: B, includeAwaitingAck: false, after: undefined, limit: 1 }))[0]!
        yield* s.markHanded([other.id], true, 500)
        const ask = [
          { l2psUid: "net", to: C },
          { l2psUid: "net", to: D },
          { l2psUid: "other", to: B },
          { l2psUid: "net", to: B },
          { l2psUid: "net", to: A },
          { l2psUid: "net", to: C }
        ]
        expect(yield* s.waiting(ask)).toEqual([true, false, true, false, false, true])
        expect(yield* s.waiting([])).toEqual([])
      })))

    test("pending pages oldest first; handed, requeued and acknowledged messages move between states", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const msgs = [1, 2, 3, 4, 5].map((i) => msg({ to: C, timestamp: 100 + i }))
        yield* s.commit(msgs.map((m) => req(m)))
        const page1 = yield* s.pending({ l2psUid: "net", to: C, includeAwaitingAck: false, after: undefined, limit: 2 })
        expect(page1.map((m) => m.timestamp)).toEqual([101, 102])
        const last = page1[1]!
        const page2 = yield* s.pending({ l2psUid: "net", to: C, includeAwaitingAck: false, after: { timestamp: last.timestamp, id: last.id }, limit: 10 })
        expect(page2.map((m) => m.timestamp)).toEqual([103, 104, 105])

        yield* s.markHanded([page1[0]!.id], false, 500)
        yield* s.markHanded([page1[1]!.id], true, 500)
        const queuedOnly = yield* s.pending({ l2psUid: "net", to: C, includeAwaitingAck: false, after: undefined, limit: 10 })
        expect(queuedOnly.map((m) => m.timestamp)).toEqual([103, 104, 105])
        const withAwaiting = yield* s.pending({ l2psUid: "net", to: C, includeAwaitingAck: true, after: undefined, limit: 10 })
        expect(withAwaiting.map((m) => m.timestamp)).toEqual([102, 103, 104, 105])

        // Only the recipient acknowledges, only in its network.
        expect(yield* s.acknowledge("net", B, [page1[1]!.messageHash], 600)).toEqual([])
        expect(yield* s.acknowledge("other", C, [page1[1]!.messageHash], 600)).toEqual([])
        const acked = yield* s.acknowledge("net", C, [page1[1]!.messageHash, page2[0]!.messageHash, "unknown"], 600)
        expect(acked.map((a) => a.messageHash).sort()).toEqual([page1[1]!.messageHash, page2[0]!.messageHash].sort())
        expect(acked.every((a) => a.from === A)).toBe(true)
        expect((yield* s.byHash("net", A, page1[1]!.messageHash))!.deliveryStatus).toBe("delivered")
        // A second ack changes nothing.
        expect(yield* s.acknowledge("net", C, [page1[1]!.messageHash], 700)).toEqual([])

        yield* s.requeue([page1[0]!.id])
        expect((yield* s.byHash("net", A, page1[0]!.messageHash))!.deliveryStatus).toBe("queued")
        expect(yield* s.byHash("net", A, "nope")).toBeUndefined()
      })))

    test("concurrent commits of many messages are all stored exactly once", () =>
      run(Effect.gen(function*() {
        const s = yield* Storage
        const batches = Array.from({ length: 20 }, (_, b) =>
          Array.from({ length: 25 }, (_, i) => req(msg({ from: `${b}`.padStart(64, "0"), deliveryStatus: "delivered", outcome: "sent", timestamp: 10_000 + b * 100 + i }))))
        const results = yield* Effect.forEach(batches, (batch) => s.commit(batch), { concurrency: "unbounded" })
        expect(results.flat().filter((r) => r._tag === "Stored").length).toBe(500)
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM l2ps_messages WHERE to_key = ${B} AND ts >= 10000`
        expect(Number(row!.n)).toBe(500)
      })))
  })
}
