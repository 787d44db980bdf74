import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, test } from "bun:test"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as PgliteClient from "../../src/storage/PgliteClient.ts"
import { databases } from "../support/TestDatabase.ts"

// The first PGlite test pays for initdb (~3 s).
const timeout = 30_000

const runWith = (layer: Layer.Layer<SqlClient.SqlClient, SqlError>) =>
<A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Scope.Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(layer)))

for (const db of await databases()) {
  describe(`SqlClient on ${db.name}`, () => {
    const run = runWith(db.layer)

    test("creates a table, inserts and selects with parameters", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, age int)`
        yield* sql`INSERT INTO people ${sql.insert([{ name: "ada", age: 36 }, { name: "alan", age: 41 }])}`
        const rows = yield* sql<{ name: string; age: number }>`
          SELECT name, age FROM people WHERE age > ${40} OR name = ${"ada"} ORDER BY id`
        expect(rows).toEqual([{ name: "ada", age: 36 }, { name: "alan", age: 41 }])
        const values = yield* sql`SELECT name FROM people WHERE id = ${2}`.values
        expect(values).toEqual([["alan"]])
        const streamed = yield* Stream.runCollect(sql`SELECT id FROM people ORDER BY id`.stream)
        expect(Chunk.toReadonlyArray(streamed)).toEqual([{ id: 1 }, { id: 2 }])
        // Without parameters several statements run at once, one row array each (node-postgres' simple protocol).
        expect(yield* sql.unsafe("SELECT 1 AS a; SELECT 2 AS b")).toEqual([[{ a: 1 }], [{ b: 2 }]])
      })), timeout)

    test("round-trips jsonb as parsed values", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE docs (id int PRIMARY KEY, body jsonb NOT NULL, meta json)`
        const body = { text: "héllo ✓", n: 1.5, list: [1, "two", null], nested: { ok: true } }
        // JSON text goes in as text: Bun's driver stores a string bound to a jsonb parameter as a JSON string.
        yield* sql`INSERT INTO docs VALUES (1, ${JSON.stringify(body)}::text::jsonb, ${JSON.stringify([1, 2])}::text::json)`
        const [row] = yield* sql<{ body: unknown; meta: unknown }>`SELECT body, meta FROM docs WHERE id = 1`
        expect(row).toEqual({ body, meta: [1, 2] })
        const [field] = yield* sql<{ text: string }>`SELECT body->>'text' AS text FROM docs WHERE body @> ${
          JSON.stringify({ nested: { ok: true } })
        }::text::jsonb`
        expect(field?.text).toBe("héllo ✓")
      })), timeout)

    // PGlite gives numbers (like node-postgres' parseInt8); Bun's Postgres driver gives text. Storage
    // code reads them with Number/String either way.
    const int8 = db.name === "pglite" ? Number : String
    test("returns int8 columns as numbers on PGlite, as text on Postgres", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE events (id bigserial PRIMARY KEY, ts bigint NOT NULL, tags bigint[])`
        yield* sql`INSERT INTO events (ts, tags) VALUES (${1_763_980_000_123}, ARRAY[1, 9007199254740991]::bigint[])`
        const [row] = yield* sql`SELECT id, ts, tags, count(*) OVER () AS total FROM events`
        expect(row).toEqual({ id: int8(1), ts: int8(1_763_980_000_123), tags: [int8(1), int8(9007199254740991)], total: int8(1) })
      })), timeout)

    test("rolls back a failed transaction and reports SQL errors as SqlError", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)`
        yield* sql`INSERT INTO accounts VALUES (1, 100)`
        const failed = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`UPDATE accounts SET balance = balance - 50 WHERE id = 1`
          yield* sql`INSERT INTO accounts VALUES (2, 50)`
          return yield* Effect.fail("abort" as const)
        })).pipe(Effect.flip)
        expect(failed).toBe("abort")
        expect(yield* sql`SELECT id, balance FROM accounts ORDER BY id`).toEqual([{ id: 1, balance: 100 }])

        const error = yield* sql`INSERT INTO accounts VALUES (1, 0)`.pipe(Effect.flip)
        expect(error).toBeInstanceOf(SqlError)
        expect(String((error.cause as Error).message)).toContain("duplicate key")
        // PgClient's message is generic; ours carries Postgres' text.
        if (db.name === "pglite") expect(error.message).toContain("duplicate key")
        // The session is still usable after an error, inside and outside a transaction.
        yield* sql.withTransaction(sql`INSERT INTO accounts VALUES (3, 0)`)
        expect(yield* sql`SELECT count(*) AS n FROM accounts`).toEqual([{ n: int8(2) }])
      })), timeout)

    test("1000 concurrent mixed operations stay correct", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE ops (id serial PRIMARY KEY, k int NOT NULL)`
        const op = (i: number): Effect.Effect<boolean, SqlError> => {
          switch (i % 4) {
            case 0:
              return Effect.map(sql<{ k: number }>`INSERT INTO ops (k) VALUES (${i}) RETURNING k`, ([r]) => r?.k === i)
            case 1:
              return Effect.map(sql<{ n: number }>`SELECT ${i}::int + 1 AS n`, ([r]) => r?.n === i + 1)
            case 2:
              return sql.withTransaction(Effect.gen(function*() {
                yield* sql`INSERT INTO ops (k) VALUES (${i})`
                yield* sql`INSERT INTO ops (k) VALUES (${-i})`
                const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ops WHERE k IN (${i}, ${-i})`
                return r?.n === 2
              }))
            default:
              return sql.withTransaction(
                Effect.zipRight(sql`INSERT INTO ops (k) VALUES (${i})`, Effect.fail("rollback" as const))
              ).pipe(Effect.catchIf((e) => e === "rollback", () => Effect.succeed(true)))
          }
        }
        const started = performance.now()
        const results = yield* Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), op, {
          concurrency: "unbounded"
        })
        const elapsed = performance.now() - started
        console.log(`${db.name}: 1000 concurrent mixed operations in ${elapsed.toFixed(0)} ms`)
        expect(results.every((ok) => ok)).toBe(true)

        const ks = (yield* sql<{ k: number }>`SELECT k FROM ops ORDER BY k`).map((r) => r.k)
        const expected = Array.from({ length: 1000 }, (_, i) => i).flatMap((i) =>
          i % 4 === 0 ? [i] : i % 4 === 2 ? [i, -i] : []
        ).sort((a, b) => a - b)
        expect(ks).toEqual(expected)
        if (db.name === "pglite") expect(elapsed).toBeLessThan(5_000)
      })), timeout)

    test("interrupting waiting and running transactions leaks neither the lock nor a transaction", () =>
      run(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE pairs (k int NOT NULL)`
        const twentiethCommitted = yield* Deferred.make<void>()
        const fiber = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) =>
            sql.withTransaction(
              Effect.zipRight(sql`INSERT INTO pairs VALUES (${i})`, sql`INSERT INTO pairs VALUES (${i})`)
            ).pipe(Effect.zipRight(i === 20 ? Deferred.succeed(twentiethCommitted, undefined) : Effect.void)),
          { concurrency: "unbounded", discard: true }
        ).pipe(Effect.fork)
        yield* Deferred.await(twentiethCommitted)
        yield* Fiber.interrupt(fiber)
        yield* sql.withTransaction(sql`INSERT INTO pairs VALUES (-1), (-1)`).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "deadlocked" as const })
        )
        const counts = yield* sql<{ n: number }>`SELECT count(*) AS n FROM pairs GROUP BY k`
        console.log(`${db.name}: ${counts.length - 1} of 200 transactions committed before the interrupt`)
        // PGlite runs transactions one at a time in order, so the 20 before the 20th committed too; a
        // Postgres pool runs them side by side, so only the 20th (and the -1 one) are sure.
        expect(counts.length).toBeGreaterThan(db.name === "pglite" ? 21 : 1)
        expect(counts.length).toBeLessThan(201)
        expect(counts.every((r) => r.n === int8(2))).toBe(true)
      })), timeout)

    if (db.name === "pglite") {
      test("persists to a dataDir across reopen", async () => {
        const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "pglite-test-"))
        try {
          const runIn = runWith(PgliteClient.layer({ dataDir }))
          await runIn(Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`CREATE TABLE kv (k text PRIMARY KEY, v jsonb)`
            yield* sql`INSERT INTO kv VALUES (${"a"}, ${JSON.stringify({ x: 1 })}::jsonb)`
          }))
          const rows = await runIn(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT k, v FROM kv`))
          expect(rows).toEqual([{ k: "a", v: { x: 1 } }])
        } finally {
          await fs.rm(dataDir, { recursive: true, force: true })
        }
      }, 60_000)
    }
  })
}
