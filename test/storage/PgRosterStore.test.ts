/**
 * `cluster_sessions` on a real Postgres (the table is a cluster member's, and a cluster runs on
 * Postgres only): first and last sessions decided once when nodes write the same keys at once, the
 * cap evicting the oldest whatever node holds it, and the purge of dead nodes only.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, type Scope } from "effect"
import { type AddedSession, RosterStore } from "../../src/internal/RosterStore.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import { LOCK_SPACE } from "../../src/storage/PgOwnership.ts"
import * as PgRosterStore from "../../src/storage/PgRosterStore.ts"
import { postgresLayer } from "../support/TestDatabase.ts"

const NET = "net"
const keyOf = (n: number) => n.toString(16).padStart(64, "0")
const session = (node: string, sid: number, key: string, since: number, cap = 5): AddedSession =>
  ({ node, sid, l2psUid: NET, key, since, cap })

const run = <X, E>(body: Effect.Effect<X, E, RosterStore | SqlClient.SqlClient | Scope.Scope>) =>
  Effect.runPromise(
    body.pipe(
      Effect.provide(PgRosterStore.layer.pipe(
        Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(postgresLayer())))
      )),
      Effect.scoped
    )
  )

describe.skipIf(!process.env["TEST_DATABASE_URL"])("PgRosterStore", () => {
  test("two nodes writing the same keys at once: each key's first and last session are announced once", () =>
    run(Effect.gen(function*() {
      const store = yield* RosterStore
      const keys = Array.from({ length: 20 }, (_, i) => keyOf(i + 1))
      const changes = yield* Effect.all(
        ["a", "b", "c"].map((node) => store.apply([], keys.map((k, i) => session(node, i + 1, k, 1000 + i)))),
        { concurrency: "unbounded" }
      )
      const joined = changes.flatMap((c) => c.transitions)
      expect(joined.every((t) => t.online)).toBe(true)
      expect(joined.map((t) => t.key).sort()).toEqual([...keys].sort())
      const left = yield* Effect.all(
        ["a", "b", "c"].map((node) => store.apply(keys.map((k, i) => session(node, i + 1, k, 1000 + i)), [])),
        { concurrency: "unbounded" }
      )
      const gone = left.flatMap((c) => c.transitions)
      expect(gone.every((t) => !t.online)).toBe(true)
      expect(gone.map((t) => t.key).sort()).toEqual([...keys].sort())
      expect((yield* store.snapshot("a")).sessions).toEqual([])
    })), 30_000)

  test("the cap evicts the oldest sessions of the key, on any node; they stop counting and their node sees them", () =>
    run(Effect.gen(function*() {
      const store = yield* RosterStore
      const k = keyOf(99)
      expect((yield* store.apply([], [session("a", 1, k, 100, 2)])).transitions).toEqual([{ l2psUid: NET, key: k, online: true }])
      expect((yield* store.apply([], [session("b", 1, k, 200, 2)])).evicted).toEqual([])
      const third = yield* store.apply([], [session("b", 2, k, 300, 2)])
      expect(third).toEqual({ transitions: [], evicted: [{ node: "a", sid: 1, l2psUid: NET, key: k }] })
      const snap = yield* store.snapshot("a")
      expect(snap.sessions.map((s) => `${s.node}/${s.sid}`)).toEqual(["b/1", "b/2"])
      expect(snap.evicted).toEqual([1])
      expect((yield* store.snapshot("b")).evicted).toEqual([])
      // Its node closes it and deletes its row: the key stays online.
      expect(yield* store.apply([session("a", 1, k, 100)], [])).toEqual({ transitions: [], evicted: [] })
    })), 30_000)

  test("purge: a node whose lock is free or whose heartbeat is stale is purged; a live one is not", () =>
    run(Effect.gen(function*() {
      const store = yield* RosterStore
      const sql = yield* SqlClient.SqlClient
      const [k1, k2, k3] = [keyOf(1), keyOf(2), keyOf(3)]
      yield* store.apply([], [session("live", 1, k1, 1), session("live", 2, k2, 1)])
      yield* store.apply([], [session("dead", 1, k2, 2), session("dead", 2, k3, 2)])
      yield* store.apply([], [session("frozen", 1, k3, 3)])
      yield* sql`INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at) VALUES ('live', 0, 10000), ('frozen', 0, 100), ('dead', 0, 10000)`
      // "live" and "frozen" hold their node locks on connections of their own, as running nodes do.
      const holders = yield* Effect.forEach(["live", "frozen"], (node) =>
        Effect.gen(function*() {
          const conn = yield* sql.reserve
          yield* conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", [LOCK_SPACE, `node/${node}`], undefined)
          return conn
        }))
      const purged = yield* store.purge("me", 5000)
      expect([...purged.nodes].sort()).toEqual(["dead", "frozen"])
      expect(purged.removed.map((s) => `${s.node}/${s.sid}`).sort()).toEqual(["dead/1", "dead/2", "frozen/1"])
      // k2 still has live's session; k3 had only dead's and frozen's.
      expect(purged.transitions).toEqual([{ l2psUid: NET, key: k3, online: false }])
      expect((yield* store.snapshot("me")).sessions.map((s) => s.node)).toEqual(["live", "live"])
      expect((yield* store.purge("me", 5000)).nodes).toEqual([])
      for (const conn of holders) yield* conn.execute("SELECT pg_advisory_unlock_all()", [], undefined)
    })), 30_000)
})
