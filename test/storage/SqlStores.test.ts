import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import { LegacyStorage } from "../../src/legacy/LegacyStorage.ts"
import * as SqlStores from "../../src/node/SqlStores.ts"
import { Storage } from "../../src/storage/Storage.ts"
import { databases } from "../support/TestDatabase.ts"

const dbs = await databases()

describe("SqlStores: the one storage layer of the node, a host and the tests", () => {
  for (const db of dbs) {
    test(`over an empty database it migrates, then serves all three stores; a second start migrates nothing (${db.name})`, () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const client = yield* Layer.build(db.layer)
        const start = Effect.scoped(Effect.gen(function*() {
          const stores = yield* Layer.build(SqlStores.layer.pipe(Layer.provide(Layer.succeedContext(client))))
          const storage = Effect.provide(Storage, stores)
          yield* Effect.flatMap(storage, (s) => s.ping)
          // Each store reads tables the migrations create: these fail on an unmigrated schema.
          expect(yield* Effect.flatMap(Effect.provide(PipelineStore, stores), (p) => p.stats)).toEqual([])
          const legacy = yield* Effect.provide(LegacyStorage, stores)
          expect(typeof legacy).toBe("object")
        }))
        const applied = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ n: number }>`SELECT count(*)::int AS n FROM effect_sql_migrations`
        ).pipe(Effect.map((rows) => rows[0]!.n), Effect.provide(client))
        yield* start
        const first = yield* applied
        expect(first).toBeGreaterThanOrEqual(10)
        yield* start
        expect(yield* applied).toBe(first)
      })) as Effect.Effect<void>), 60_000)
  }
})
