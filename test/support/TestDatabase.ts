import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { PGlite } from "@electric-sql/pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as BunPgClient from "../../src/storage/BunPgClient.ts"
import * as PgliteClient from "../../src/storage/PgliteClient.ts"
import * as PgliteWorkerClient from "../../src/storage/PgliteWorkerClient.ts"

export interface TestDatabase {
  readonly name: "pglite" | "postgres"
  /** Builds a fresh, empty database each time it is provided. */
  readonly layer: Layer.Layer<SqlClient.SqlClient, SqlError>
}

const fail = (message: string) => (cause: unknown) => new SqlError({ cause, message })

// initdb costs 1.2-3 s per PGlite instance. `pglite.clone()` of an empty template costs 0.25-0.8 s,
// and it is a dump plus a load; loading a dump taken once costs ~0.2 s. So dump once per process.
let templateDump: Promise<File | Blob> | undefined
const template = () =>
  templateDump ??= PGlite.create().then(async (pglite) => {
    try {
      return await pglite.dumpDataDir("none")
    } finally {
      await pglite.close()
    }
  })

/** A fresh in-memory PGlite (a copy of an empty template) on the calling thread (`fromInstance`). */
export const pgliteLayer = (): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(
    SqlClient.SqlClient,
    Effect.gen(function*() {
      const dump = yield* Effect.tryPromise({ try: template, catch: fail("Failed to create the PGlite template") })
      const pglite = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => PGlite.create({ loadDataDir: dump }),
          catch: fail("Failed to load the PGlite template")
        }),
        (pglite) => Effect.promise(() => pglite.close())
      )
      return yield* PgliteClient.fromInstance(pglite)
    })
  ).pipe(Layer.provide(Reactivity.layer))

let templateBytes: Promise<ArrayBuffer> | undefined
/** The dump of an empty PGlite database, taken once per process, as `loadDataDir` takes it. */
export const pgliteTemplate = (): Promise<ArrayBuffer> => templateBytes ??= template().then((dump) => dump.arrayBuffer())

/** A fresh in-memory PGlite (a copy of an empty template) in a worker thread, as the node runs it. */
export const pgliteWorkerLayer = (
  options: { readonly maxPending?: number } = {}
): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(
    SqlClient.SqlClient,
    Effect.gen(function*() {
      const loadDataDir = yield* Effect.tryPromise({
        try: pgliteTemplate,
        catch: fail("Failed to create the PGlite template")
      })
      const worker = yield* PgliteWorkerClient.make({ loadDataDir, maxPending: options.maxPending })
      return worker.sql
    })
  ).pipe(Layer.provide(Reactivity.layer))

const testDatabaseUrl = (): string | undefined => process.env["TEST_DATABASE_URL"] || undefined

const urlFor = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** A fresh database `im_test_<random>` on TEST_DATABASE_URL, dropped when the layer is released. */
export const postgresLayer = (): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(
    SqlClient.SqlClient,
    Effect.gen(function*() {
      const url = testDatabaseUrl()
      if (url === undefined) {
        return yield* Effect.dieMessage("postgresLayer needs TEST_DATABASE_URL")
      }
      const name = `im_test_${crypto.randomUUID().replaceAll("-", "")}`
      const admin = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
      yield* Effect.acquireRelease(
        admin`CREATE DATABASE ${admin(name)}`,
        () => Effect.orDie(admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`)
      )
      // The client the node uses on Postgres (`pg` is still covered by the embedding test).
      return yield* BunPgClient.make({ url: Redacted.make(urlFor(url, name)), maxConnections: 4 })
    })
  ).pipe(Layer.provide(Reactivity.layer))

const reachable = (url: string): Promise<boolean> =>
  Effect.runPromise(
    PgClient.make({ url: Redacted.make(url), maxConnections: 1, connectTimeout: "3 seconds" }).pipe(
      Effect.scoped,
      Effect.provide(Reactivity.layer),
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
  )

let available: Promise<ReadonlyArray<TestDatabase>> | undefined

/**
 * The databases to run storage tests on: PGlite always (in its worker thread, as the node runs it),
 * Postgres when TEST_DATABASE_URL is set.
 * Outside CI an unreachable Postgres is skipped with a warning; in CI (`CI` set) it stays in the
 * list, so its tests fail.
 */
export const databases = (): Promise<ReadonlyArray<TestDatabase>> =>
  available ??= (async () => {
    const pglite: TestDatabase = { name: "pglite", layer: pgliteWorkerLayer() }
    const url = testDatabaseUrl()
    if (url === undefined) return [pglite]
    const postgres: TestDatabase = { name: "postgres", layer: postgresLayer() }
    if (process.env["CI"] || (await reachable(url))) return [pglite, postgres]
    console.warn(`TEST_DATABASE_URL is set but Postgres is unreachable; storage tests run on PGlite only`)
    return [pglite]
  })()
