import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { SQL } from "bun"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { PgKeepalives } from "../config/NodeConfig.ts"
import * as Stream from "effect/Stream"

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
type Session = Pick<SQL, "unsafe">

export interface BunPgOptions {
  readonly url: Redacted.Redacted<string>
  readonly maxConnections: number
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Sent at connect: the server then probes each connection and drops one whose peer is gone. */
  readonly keepalives?: PgKeepalives | undefined
}

/**
 * The server-side settings that make Postgres notice a vanished client: keepalives for an idle
 * connection, `tcp_user_timeout` for one with unacknowledged data in flight (keepalives wait behind it).
 */
export const keepaliveParameters = (k: PgKeepalives): Record<string, number> => ({
  tcp_keepalives_idle: k.idleSeconds,
  tcp_keepalives_interval: k.intervalSeconds,
  tcp_keepalives_count: k.count,
  tcp_user_timeout: (k.idleSeconds + k.intervalSeconds * k.count) * 1000
})

const errorMessage = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/**
 * Closes the pool, waiting at most 2 s: a release runs uninterruptibly, so the wait itself is made
 * interruptible, or the timeout could not end it and a hung database would hold the node's stop.
 */
export const closePool = (pool: Pick<SQL, "close">): Effect.Effect<void> =>
  Effect.promise(() => pool.close({ timeout: 1 })).pipe(Effect.interruptible, Effect.timeoutOption("2 seconds"), Effect.asVoid)

/**
 * A `SqlClient` over Bun's native Postgres driver. `pg` writes through Bun's `node:net`, which cost
 * the relay a fifth of its CPU under load (the group commit's large Bind messages); this driver
 * speaks the wire protocol natively. Statements compile with `@effect/sql-pg`'s compiler, as on PGlite.
 *
 * One difference to keep in mind when writing SQL: a string bound to a `jsonb` parameter is stored as
 * a JSON *string*, so JSON text goes in as `text` and is cast (`${json}::text::jsonb`).
 */
export const make = (options: BunPgOptions): Effect.Effect<SqlClient.SqlClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.connectTimeout ?? "5 seconds")
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new SQL(Redacted.value(options.url), {
          max: options.maxConnections,
          connectionTimeout: Math.ceil(Duration.toSeconds(timeout)),
          // int8 comes back as text (ids and timestamps are read with Number/String), as with `pg`.
          bigint: false,
          ...(options.keepalives === undefined ? {} : { connection: keepaliveParameters(options.keepalives) })
        })
      ),
      closePool
    )

    const query = (db: Session, sql: string, params: ReadonlyArray<unknown>, values: boolean) =>
      Effect.async<ReadonlyArray<any>, SqlError>((resume) => {
        const q = db.unsafe(sql, params as Array<unknown>)
        ;(values ? q.values() : q).then(
          (rows: ReadonlyArray<any>) => resume(Effect.succeed(rows)),
          (cause: unknown) =>
            resume(Effect.fail(new SqlError({ cause, message: `Failed to execute statement: ${errorMessage(cause)}` })))
        )
        return Effect.sync(() => q.cancel())
      })

    const connectionOf = (db: Session): Connection => {
      const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => {
        const rows = query(db, sql, params, false)
        return transformRows ? Effect.map(rows, transformRows) : rows
      }
      return {
        execute,
        executeRaw: (sql, params) => query(db, sql, params, false),
        executeValues: (sql, params) => query(db, sql, params, true),
        executeUnprepared: execute,
        executeStream: (sql, params, transformRows) =>
          Stream.unwrap(Effect.map(execute(sql, params, transformRows), Stream.fromIterable))
      }
    }

    yield* query(pool, "SELECT 1", [], false).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "Postgres: connection timed out" })
      }),
      Effect.mapError((e) => new SqlError({ cause: e.cause, message: `Postgres: failed to connect: ${errorMessage(e.cause)}` }))
    )

    // A transaction holds one connection of the pool for its scope.
    const reserve = Effect.acquireRelease(
      Effect.tryPromise({
        try: () => pool.reserve(),
        catch: (cause) =>
          new SqlError({ cause, message: `Failed to acquire connection for transaction: ${errorMessage(cause)}` })
      }),
      (reserved) => Effect.sync(() => reserved.release())
    ).pipe(Effect.map(connectionOf))

    const url = new URL(Redacted.value(options.url))
    return yield* SqlClient.make({
      acquirer: Effect.succeed(connectionOf(pool)),
      transactionAcquirer: reserve,
      compiler: PgClient.makeCompiler(),
      spanAttributes: [
        ["db.system.name", "postgresql"],
        ["db.namespace", url.pathname.slice(1) || "postgres"],
        ["server.address", url.hostname],
        ["server.port", Number(url.port || 5432)]
      ]
    })
  })

export const layer = (options: BunPgOptions): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Layer.scoped(SqlClient.SqlClient, make(options)).pipe(Layer.provide(Reactivity.layer))
