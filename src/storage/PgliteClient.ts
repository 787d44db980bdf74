import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type { PGliteInterface, QueryOptions, Results } from "@electric-sql/pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { parsers } from "./PgliteParsers.ts"
import * as PgliteWorkerClient from "./PgliteWorkerClient.ts"
import { makePrivate } from "./PrivateDir.ts"

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const errorMessage = (cause: unknown): string =>
  cause instanceof Error ? cause.message : String(cause)

/**
 * A `SqlClient` over an existing PGlite instance, which the caller keeps owning (and closes).
 * Statements compile with `@effect/sql-pg`'s compiler, so they are the same as on Postgres.
 */
export const fromInstance = (
  pglite: PGliteInterface
): Effect.Effect<SqlClient.SqlClient, never, Reactivity.Reactivity> =>
  Effect.gen(function*() {
    // PGlite is a single session, so one token guards it, held for a whole statement or
    // transaction. Not a Semaphore: Effect 3's wakes waiters in O(waiters) (see STACK.md).
    const lock = yield* Queue.bounded<void>(1)
    yield* Queue.offer(lock, undefined)
    // The take is uninterruptible (acquireRelease): an interrupted Queue.take can swallow a token
    // handed to it at the same moment, which would lock the database for good. An interrupted
    // waiter instead takes its turn and gives the token back at once.
    const acquire = Effect.acquireRelease(Queue.take(lock), () => Queue.offer(lock, undefined))

    // Without parameters node-postgres uses the simple protocol, which accepts several
    // statements; do the same with `exec` so raw migration scripts behave alike.
    const query = (sql: string, params: ReadonlyArray<unknown>, options?: QueryOptions) =>
      Effect.tryPromise({
        try: (): Promise<Results | Array<Results>> =>
          params.length === 0
            ? pglite.exec(sql, { ...options, parsers })
            : pglite.query(sql, params as Array<unknown>, { ...options, parsers }),
        catch: (cause) => new SqlError({ cause, message: `Failed to execute statement: ${errorMessage(cause)}` })
      }).pipe(
        // PGlite cannot cancel a running query; the lock must stay held until it has finished.
        Effect.uninterruptible
      )

    // One result gives its rows, several give one row array per statement, as in PgClient.
    const rowsOf = (result: Results | Array<Results>): ReadonlyArray<any> =>
      Array.isArray(result)
        ? result.length === 1 ? result[0]!.rows : result.map((r) => r.rows)
        : result.rows

    const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => {
      const rows = Effect.map(query(sql, params), rowsOf)
      return transformRows ? Effect.map(rows, transformRows) : rows
    }

    const connection: Connection = {
      execute,
      executeRaw: query,
      executeValues: (sql, params) => Effect.map(query(sql, params, { rowMode: "array" }), rowsOf),
      executeUnprepared: execute,
      executeStream: (sql, params, transformRows) =>
        Stream.unwrap(Effect.map(execute(sql, params, transformRows), Stream.fromIterable))
    }
    const acquirer = Effect.as(acquire, connection)

    return yield* SqlClient.make({
      acquirer,
      transactionAcquirer: acquirer,
      compiler: PgClient.makeCompiler(),
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", "pglite"]]
    })
  })

/**
 * Its files private to the process's user, before and after PGlite opens them: it creates them 0666
 * and 0777 under whatever umask the host process has (the node sets 0077; an embedding host may not).
 */
const privateDir = (dataDir: string | undefined, warn: boolean) =>
  dataDir === undefined
    ? Effect.void
    : makePrivate(dataDir, warn).pipe(Effect.mapError((e) => new SqlError({ cause: e, message: e.message })))

/**
 * Opens PGlite on `dataDir` (in memory without one) in a worker thread for the scope, then closes it:
 * its statements run off the event loop (see `PgliteWorkerClient`).
 */
export const make = (
  options: { readonly dataDir?: string | undefined; readonly maxPending?: number | undefined }
): Effect.Effect<SqlClient.SqlClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  privateDir(options.dataDir, true).pipe(
    Effect.zipRight(PgliteWorkerClient.make({
      ...options,
      // What PGlite has just created (at the first open or a reopen), 0666 whatever the umask; the
      // directory (0700) already kept others out.
      afterOpen: privateDir(options.dataDir, false)
    })),
    Effect.map((worker) => worker.sql)
  )

export const layer = (
  options: { readonly dataDir?: string | undefined; readonly maxPending?: number | undefined }
): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(SqlClient.SqlClient, make(options)).pipe(Layer.provide(Reactivity.layer))

export const layerFromInstance = (pglite: PGliteInterface): Layer.Layer<SqlClient.SqlClient> =>
  Layer.effect(SqlClient.SqlClient, fromInstance(pglite)).pipe(Layer.provide(Reactivity.layer))
