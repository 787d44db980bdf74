/**
 * The clock rows of nodes sharing a database (`SqlStorage.make({ conversationClocks: true })`): a
 * conversation's stored timestamps strictly increase whatever the messages proposed, within one
 * commit, across commits and across two storages committing at once; never more than
 * MAX_AHEAD_MILLIS ahead of the clock; refused messages take no timestamp.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { MAX_AHEAD_MILLIS } from "../../src/domain/Timestamps.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlStorage from "../../src/storage/SqlStorage.ts"
import type { CommitRequest, CommitResult, NewMessage, StorageShape } from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const C = "c".repeat(64)

let seq = 0
const msg = (over: Partial<NewMessage> = {}): NewMessage => ({
  l2psUid: "net",
  from: A,
  to: B,
  messageHash: `clock-${++seq}`,
  encryptedJson: JSON.stringify({ ciphertext: "Y2lwaGVy", nonce: "bm9uY2U=" }),
  timestamp: 1_000,
  deliveryStatus: "delivered",
  awaitingAck: false,
  outcome: "sent",
  ...over
})
const req = (message: NewMessage, pairLimit = 200): CommitRequest => ({ message, pairLimit })
const stamps = (results: ReadonlyArray<CommitResult>) => results.map((r) => (r._tag === "Stored" ? r.timestamp : r._tag))

// Postgres only: nodes share a database only on Postgres (`NATS_URL` with PGlite is a start-up error).
for (const db of (await databases()).filter((d) => d.name === "postgres")) {
  /** Two clustered storages (two nodes) and one alone, on one fresh database. */
  const run = <A, E>(body: (s: { n1: StorageShape; n2: StorageShape; alone: StorageShape }) => Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.runPromise(
      Effect.gen(function*() {
        const n1 = yield* SqlStorage.make({ conversationClocks: true })
        const n2 = yield* SqlStorage.make({ conversationClocks: true })
        const alone = yield* SqlStorage.make()
        return yield* body({ n1, n2, alone })
      }).pipe(Effect.provide(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))) as Effect.Effect<A, E>
    )
  const history = (s: StorageShape, me = A, peer = B) =>
    Effect.map(s.history("net", me, peer, undefined, 1000), (rows) => rows.map((m) => m.timestamp))

  describe(`conversation clocks on ${db.name}`, () => {
    test("equal proposals in one commit and across commits: distinct, increasing, in commit order, both directions", () =>
      run(({ n1, n2 }) =>
        Effect.gen(function*() {
          // Three equal proposals in one commit, one of them from the other side of the conversation.
          expect(stamps(yield* n1.commit([req(msg()), req(msg({ from: B, to: A })), req(msg())]))).toEqual([1000, 1001, 1002])
          // The same proposal again, from another node: after the last one.
          expect(stamps(yield* n2.commit([req(msg()), req(msg())]))).toEqual([1003, 1004])
          // A proposal past the clock is kept; a lower one after it is raised.
          expect(stamps(yield* n1.commit([req(msg({ timestamp: 5000 })), req(msg({ timestamp: 10 }))]))).toEqual([5000, 5001])
          // Another conversation, or network, has a clock of its own.
          expect(stamps(yield* n2.commit([req(msg({ to: C })), req(msg({ l2psUid: "other" }))]))).toEqual([1000, 1000])
          // History has what the commits answered.
          expect(yield* history(n1)).toEqual([5001, 5000, 1004, 1003, 1002, 1001, 1000])
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ l2ps_uid: string; ts: string }>`SELECT l2ps_uid, ts::text AS ts FROM conversation_clocks ORDER BY l2ps_uid, ts`
          expect(rows.map((r) => [r.l2ps_uid, Number(r.ts)])).toEqual([["net", 1000], ["net", 5001], ["other", 1000]])
        })))

    test("two storages committing at once: every timestamp of the conversation distinct", () =>
      run(({ n1, n2 }) =>
        Effect.gen(function*() {
          const commits = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? n1 : n2).commit(
            Array.from({ length: 10 }, (_, j) => req(j % 2 === 0 ? msg({ timestamp: 2000 }) : msg({ from: B, to: A, timestamp: 2000 })))
          ))
          const results = (yield* Effect.all(commits, { concurrency: "unbounded" })).flat()
          const ts = stamps(results) as Array<number>
          expect(ts.every((t) => typeof t === "number")).toBe(true)
          expect(new Set(ts).size).toBe(160)
          expect(Math.min(...ts)).toBe(2000)
          expect(Math.max(...ts)).toBe(2159)
          // Within each commit, in the order of its members.
          for (let i = 0; i < 16; i++) {
            const own = ts.slice(i * 10, i * 10 + 10)
            expect(own).toEqual([...own].sort((x, y) => x - y))
          }
        })))

    test("never more than MAX_AHEAD_MILLIS ahead of the clock: refused, nothing stored, the clock not moved", () =>
      run(({ n1 }) =>
        Effect.gen(function*() {
          const now = Date.now()
          expect(stamps(yield* n1.commit([req(msg({ timestamp: now }))]))).toEqual([now])
          const sql = yield* SqlClient.SqlClient
          // The conversation's clock already at the bound (as a burst on other nodes would leave it).
          const ahead = now + MAX_AHEAD_MILLIS + 60_000
          yield* sql`UPDATE conversation_clocks SET ts = ${ahead}`
          const busy = msg({ timestamp: now })
          expect(yield* n1.commit([req(busy), req(msg({ to: C, timestamp: now }))])).toEqual([
            { _tag: "ConversationBusy" },
            { _tag: "Stored", id: expect.any(String), timestamp: now }
          ])
          expect(yield* n1.byHash("net", A, busy.messageHash)).toBeUndefined()
          const rows = yield* sql<{ ts: string }>`SELECT ts::text AS ts FROM conversation_clocks ORDER BY ts DESC LIMIT 1`
          expect(Number(rows[0]!.ts)).toBe(ahead)
        })))

    test("a message refused by its pair's limit takes no timestamp; a duplicate takes none either", () =>
      run(({ n1 }) =>
        Effect.gen(function*() {
          const queued = { deliveryStatus: "queued", outcome: "queued" } as const
          const first = msg(queued)
          const results = yield* n1.commit([req(first, 1), req(msg(queued), 1), req(first, 1)])
          expect(results.map((r) => r._tag)).toEqual(["Stored", "PairLimit", "Duplicate"])
          expect(stamps(yield* n1.commit([req(msg())]))).toEqual([1001])
        })))

    test("a conversation written alone first: the clock starts after its newest stored message", () =>
      run(({ n1, alone }) =>
        Effect.gen(function*() {
          expect(stamps(yield* alone.commit([req(msg({ timestamp: 7000 })), req(msg({ timestamp: 7000 }))]))).toEqual([7000, 7000])
          expect(stamps(yield* n1.commit([req(msg({ timestamp: 6000 }))]))).toEqual([7001])
          // Written alone again (a node restarted without NATS_URL), then clustered: still after it.
          expect(stamps(yield* alone.commit([req(msg({ timestamp: 9000 }))]))).toEqual([9000])
          expect(stamps(yield* n1.commit([req(msg({ timestamp: 100 }))]))).toEqual([9001])
        })))
  })
}
