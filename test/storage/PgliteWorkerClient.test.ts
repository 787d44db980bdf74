import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlError } from "@effect/sql/SqlError"
import { describe, expect, test } from "bun:test"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as PgliteWorkerClient from "../../src/storage/PgliteWorkerClient.ts"
import { pgliteTemplate } from "../support/TestDatabase.ts"

// Opening PGlite in a fresh thread costs 0.5-2 s even from a template, more on a loaded machine.
const timeout = 60_000

const open = (options: PgliteWorkerClient.WorkerOptions = {}) =>
  Effect.flatMap(Effect.promise(pgliteTemplate), (loadDataDir) => PgliteWorkerClient.make({ loadDataDir, ...options }))

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope | Reactivity.Reactivity>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(Reactivity.layer)))

const withDataDir = async <A>(f: (dataDir: string) => Promise<A>): Promise<A> => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "pglite-worker-test-"))
  try {
    return await f(dataDir)
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true })
  }
}

describe("PGlite in a worker thread", () => {
  test("the event loop runs while PGlite runs a statement", () =>
    run(Effect.gen(function*() {
      const { sql } = yield* open({})
      // On the calling thread, PGlite's 400 ms statement would hold every timer for 400 ms.
      const ticks: Array<number> = []
      const timer = setInterval(() => ticks.push(performance.now()), 5)
      const started = performance.now()
      yield* sql`SELECT pg_sleep(0.4)`
      const ended = performance.now()
      clearInterval(timer)
      const gaps = ticks.map((t, i) => t - (i === 0 ? started : ticks[i - 1]!))
      expect(ended - started).toBeGreaterThanOrEqual(390)
      expect(ticks.length).toBeGreaterThan(10)
      // Generous for a loaded machine: far under the statement's 400 ms.
      expect(Math.max(...gaps)).toBeLessThan(200)
    })), timeout)

  test("another caller's statements never run inside a transaction", () =>
    run(Effect.gen(function*() {
      const { sql } = yield* open({})
      yield* sql`CREATE TABLE t (k text NOT NULL)`
      const inside = yield* Deferred.make<void>()
      // While the transaction is open and idle on this thread, 50 other inserts are issued. PGlite is one
      // session: any that reached it before the COMMIT would run inside the transaction, be seen by it,
      // and be rolled back with it.
      const tx = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO t VALUES ('a')`
        const [before] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM t WHERE k = 'b'`
        yield* Deferred.succeed(inside, undefined)
        yield* Effect.sleep("100 millis")
        const [after] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM t WHERE k = 'b'`
        return yield* Effect.fail({ before: before!.n, after: after!.n })
      })).pipe(Effect.flip, Effect.fork)
      yield* Deferred.await(inside)
      const others = yield* Effect.forEach(Array.from({ length: 50 }), () => sql`INSERT INTO t VALUES ('b')`, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.fork)
      const seen = yield* Fiber.join(tx)
      yield* Fiber.join(others)
      if (seen instanceof SqlError) throw seen
      expect(seen.after).toBe(seen.before)
      const rows = yield* sql<{ k: string; n: number }>`SELECT k, count(*)::int AS n FROM t GROUP BY k ORDER BY k`
      expect(rows).toEqual([{ k: "b", n: 50 }])
    })), timeout)

  test("at most maxPending statements are on the channel; the rest wait for room", () =>
    run(Effect.gen(function*() {
      const worker = yield* open({ maxPending: 4 })
      const { sql } = worker
      let most = 0
      const watch = yield* Effect.sync(() => {
        most = Math.max(most, worker.inFlight())
      }).pipe(Effect.zipRight(Effect.sleep("1 millis")), Effect.forever, Effect.fork)
      const slow = yield* sql`SELECT pg_sleep(0.3)`.pipe(Effect.fork)
      const results = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => Effect.map(sql<{ n: number }>`SELECT ${i}::int AS n`, ([r]) => r!.n),
        { concurrency: "unbounded" }
      )
      yield* Fiber.join(slow)
      yield* Fiber.interrupt(watch)
      expect(results).toEqual(Array.from({ length: 40 }, (_, i) => i))
      // The slow statement kept the channel full for 300 ms, so the bound was reached and held.
      expect(most).toBe(4)
      expect(worker.inFlight()).toBe(0)
    })), timeout)

  test("a worker that dies fails its statements with a SqlError; the next one reopens the data directory", () =>
    withDataDir((dataDir) =>
      run(Effect.gen(function*() {
        const worker = yield* open({ dataDir })
        const { sql } = worker
        yield* sql`CREATE TABLE kv (k int PRIMARY KEY)`
        yield* sql`INSERT INTO kv VALUES (1), (2)`

        // Dies inside a transaction, while one of its statements runs: the statement and the transaction
        // fail as SqlErrors (not defects), and a statement waiting for the lock meanwhile runs in a new thread.
        const started = yield* Deferred.make<void>()
        const tx = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO kv VALUES (3)`
          yield* Deferred.succeed(started, undefined)
          yield* sql`SELECT pg_sleep(5)`
        })).pipe(Effect.flip, Effect.fork)
        yield* Deferred.await(started)
        const waiting = yield* sql`INSERT INTO kv VALUES (4)`.pipe(Effect.fork)
        yield* Effect.sleep("100 millis")
        worker.kill()
        const failed = yield* Fiber.join(tx)
        expect(failed).toBeInstanceOf(SqlError)
        expect(failed.message).toContain("PGlite worker stopped")
        yield* Fiber.join(waiting)

        // What was committed before is there, in a new thread.
        expect(yield* sql`SELECT k FROM kv ORDER BY k`).toEqual([{ k: 1 }, { k: 2 }, { k: 4 }])
        yield* sql`INSERT INTO kv VALUES (5)`
        expect(worker.inFlight()).toBe(0)
      }))), timeout)

  test("in memory, a dead worker's database is gone: every statement fails from then on", () =>
    run(Effect.gen(function*() {
      const worker = yield* open({})
      yield* worker.sql`SELECT 1`
      worker.kill()
      for (let i = 0; i < 2; i++) {
        const error = yield* worker.sql`SELECT 1`.pipe(Effect.flip)
        expect(error).toBeInstanceOf(SqlError)
        expect(error.message).toContain("in-memory database is lost")
      }
    })), timeout)

  test("errors keep Postgres' SQLSTATE across the channel", () =>
    run(Effect.gen(function*() {
      const { sql } = yield* open({})
      yield* sql`CREATE TABLE u (k int PRIMARY KEY)`
      yield* sql`INSERT INTO u VALUES (${1})`
      const error = yield* sql`INSERT INTO u VALUES (${1})`.pipe(Effect.flip)
      expect(error).toBeInstanceOf(SqlError)
      expect(error.message).toContain("duplicate key")
      expect((error.cause as { code?: string }).code).toBe("23505")
    })), timeout)
})
