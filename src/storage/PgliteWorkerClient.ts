import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Reactivity from "@effect/experimental/Reactivity"
import type { Results } from "@electric-sql/pglite"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { StatementRequest, WorkerError, WorkerRequest, WorkerResponse } from "./PgliteWorker.ts"

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
type Result = Results | Array<Results>

export interface WorkerOptions {
  /** PGlite's data directory; in memory without one. */
  readonly dataDir?: string | undefined
  /** A data directory dump (PGlite's `dumpDataDir`) to start from, in memory. */
  readonly loadDataDir?: ArrayBuffer | undefined
  /** Statements posted to the worker and not yet answered; callers wait for room past it (default 64). */
  readonly maxPending?: number | undefined
  /** Runs after every open, the first and each reopen after the thread died. */
  readonly afterOpen?: Effect.Effect<void, SqlError> | undefined
}

export interface PgliteWorker {
  readonly sql: SqlClient.SqlClient
  /** Statements posted to the worker and not yet answered. */
  readonly inFlight: () => number
  /** Stops the thread at once, as a crash of the worker would (seen at once, not when its exit is reported). */
  readonly kill: () => void
}

const WORKER_URL = new URL("./PgliteWorker.ts", import.meta.url).href

/** One worker thread and the statements waiting for its answers. */
interface Thread {
  readonly worker: Worker
  readonly pending: Map<number, (response: WorkerResponse) => void>
  /** Set once the thread has stopped: every statement after it fails with this. */
  dead: SqlError | undefined
  /** Ends the thread, failing what it held. */
  stop: (reason: string) => void
}

const errorOf = (e: WorkerError): Error =>
  Object.assign(new Error(e.message), e.fields)

const failure = (message: string, cause?: unknown) => new SqlError({ cause, message })

/**
 * Opens PGlite in a worker thread for the scope, and a `SqlClient` over it: the statements run on the
 * worker, so the node's event loop goes on reading sockets meanwhile. Statements compile with
 * `@effect/sql-pg`'s compiler, as on Postgres.
 *
 * Order is the one rule: the worker runs what it is sent in order, so a statement outside a
 * transaction is posted under a lock (and answered after it is released), and a transaction holds the
 * lock from its BEGIN to its COMMIT's answer, so nothing interleaves with it. At most `maxPending`
 * statements are on the channel; a thread that dies fails what it held with a `SqlError`, and the next
 * statement opens the data directory again in a new thread (in memory there is nothing to reopen: every
 * statement fails from then on).
 */
export const make = (
  options: WorkerOptions
): Effect.Effect<PgliteWorker, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const maxPending = Math.max(1, options.maxPending ?? 64)
    // Tokens, not Semaphores: Effect 3's Semaphore wakes waiters in O(waiters) (see STACK.md).
    const lock = yield* Queue.bounded<void>(1)
    yield* Queue.offer(lock, undefined)
    const slots = yield* Queue.bounded<void>(maxPending)
    yield* Queue.offerAll(slots, Array.from({ length: maxPending }, () => undefined))
    let inFlight = 0
    let nextId = 0

    const spawn = (loadDataDir: ArrayBuffer | undefined) => Effect.async<Thread, SqlError>((resume) => {
      const worker = new Worker(WORKER_URL)
      const thread: Thread = { worker, pending: new Map(), dead: undefined, stop: () => undefined }
      let opening = true
      const opened = (result: Effect.Effect<Thread, SqlError>) => {
        if (!opening) return
        opening = false
        resume(result)
      }
      const die = (reason: string) => {
        if (thread.dead !== undefined) return
        thread.dead = failure(`PGlite worker stopped (${reason})${options.dataDir === undefined ? "; its in-memory database is lost" : ""}`)
        const error = { message: thread.dead.message, fields: { name: "PgliteWorkerStopped" } }
        for (const [id, answer] of thread.pending) answer({ id, error })
        thread.pending.clear()
        worker.terminate()
        opened(Effect.fail(thread.dead))
      }
      thread.stop = die
      worker.onmessage = (event: MessageEvent<WorkerResponse>) => {
        const data = event.data
        if ("id" in data) {
          const answer = thread.pending.get(data.id)
          thread.pending.delete(data.id)
          answer?.(data)
        } else if ("opened" in data) {
          opened(Effect.succeed(thread))
        } else if ("openFailed" in data) {
          opened(Effect.fail(failure(`Failed to open PGlite ${options.dataDir ?? "in memory"}: ${data.openFailed.message}`, errorOf(data.openFailed))))
          die("it could not open the database")
        } else if ("closed" in data) {
          thread.pending.get(0)?.(data as never)
        }
      }
      worker.addEventListener("error", (event) => die(`error: ${(event as ErrorEvent).message}`))
      worker.addEventListener("close", () => die("its thread exited"))
      worker.postMessage({ open: { dataDir: options.dataDir, loadDataDir } } satisfies WorkerRequest)
      // Interrupted while opening (the scope closed meanwhile): the thread goes too.
      return Effect.sync(() => {
        opening = false
        die("the open was interrupted")
      })
    })

    const afterOpen = options.afterOpen ?? Effect.void
    let thread = yield* Effect.tap(spawn(options.loadDataDir), () => afterOpen)
    // Under the lock: one reopen at a time, and never while a transaction holds the old thread.
    const current = Effect.suspend(() =>
      thread.dead === undefined || options.dataDir === undefined
        ? Effect.succeed(thread)
        : Effect.tap(spawn(undefined), (t) => Effect.zipRight(Effect.sync(() => { thread = t }), afterOpen))
    )

    /** Posts one statement (holding a slot until it is answered); the answer completes the Deferred. */
    const send = (t: Thread, request: Omit<StatementRequest, "id">) =>
      Effect.flatMap(Queue.take(slots), () =>
        Effect.flatMap(Deferred.make<Result, SqlError>(), (answer) =>
          Effect.sync(() => {
            const settle = (result: Effect.Effect<Result, SqlError>) => {
              inFlight--
              Queue.unsafeOffer(slots, undefined)
              Deferred.unsafeDone(answer, result)
            }
            inFlight++
            if (t.dead !== undefined) {
              settle(Effect.fail(t.dead))
              return answer
            }
            const id = ++nextId
            t.pending.set(id, (response) =>
              settle(
                "error" in response
                  ? Effect.fail(failure(`Failed to execute statement: ${response.error.message}`, errorOf(response.error)))
                  : Effect.succeed((response as { readonly result: Result }).result)
              ))
            try {
              t.worker.postMessage({ ...request, id } satisfies WorkerRequest)
            } catch (cause) {
              t.pending.delete(id)
              settle(Effect.fail(failure(`Failed to send statement to PGlite: ${String(cause)}`, cause)))
            }
            return answer
          })))

    // One result gives its rows, several give one row array per statement, as in PgClient.
    const rowsOf = (result: Result): ReadonlyArray<any> =>
      Array.isArray(result)
        ? result.length === 1 ? result[0]!.rows : result.map((r) => r.rows)
        : result.rows

    const connectionOf = (query: (sql: string, params: ReadonlyArray<unknown>, rowMode?: "array") => Effect.Effect<Result, SqlError>): Connection => {
      const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => {
        const rows = Effect.map(query(sql, params), rowsOf)
        return transformRows ? Effect.map(rows, transformRows) : rows
      }
      return {
        execute,
        executeRaw: (sql, params) => query(sql, params),
        executeValues: (sql, params) => Effect.map(query(sql, params, "array"), rowsOf),
        executeUnprepared: execute,
        executeStream: (sql, params, transformRows) =>
          Stream.unwrap(Effect.map(execute(sql, params, transformRows), Stream.fromIterable))
      }
    }

    const takeLock = Effect.acquireRelease(Queue.take(lock), () => Queue.offer(lock, undefined))

    // Outside a transaction the lock is held only while posting: statements from many callers are on
    // the channel at once, and the worker never waits for this thread to send the next one. PGlite
    // cannot cancel a statement, so neither the post nor the wait is interruptible.
    const single = connectionOf((sql, params, rowMode) =>
      Effect.uninterruptible(
        Effect.flatMap(
          Effect.scoped(Effect.flatMap(Effect.zipRight(takeLock, current), (t) => send(t, { sql, params, rowMode }))),
          Deferred.await
        )
      )
    )

    // A transaction holds the lock for its scope. Its BEGIN travels with its first statement, and a
    // transaction without statements sends nothing.
    const transaction = Effect.gen(function*() {
      yield* takeLock
      const t = yield* current
      let beginPending = false
      return connectionOf((sql, params, rowMode) => {
        if (params.length === 0 && sql === "BEGIN") {
          beginPending = true
          return Effect.succeed([])
        }
        const rollback = params.length === 0 && sql === "ROLLBACK"
        if (beginPending && (rollback || (params.length === 0 && sql === "COMMIT"))) {
          beginPending = false
          return Effect.succeed([])
        }
        const begin = beginPending
        beginPending = false
        const run = Effect.uninterruptible(Effect.flatMap(send(t, { sql, params, rowMode, begin }), Deferred.await))
        // The transaction of a thread that has stopped went with it: rolled back, as a rollback wants.
        return rollback ? Effect.catchAll(run, (e) => t.dead === undefined ? Effect.fail(e) : Effect.succeed([])) : run
      })
    })

    const sql = yield* SqlClient.make({
      acquirer: Effect.succeed(single),
      transactionAcquirer: transaction,
      compiler: PgClient.makeCompiler(),
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", "pglite"]]
    })

    // After everything posted before it, PGlite closes (flushing its files); then the thread ends.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const t = thread
        if (t.dead !== undefined) return Effect.void
        return Effect.async<void>((resume) => {
          t.pending.set(0, () => resume(Effect.void))
          t.worker.postMessage({ close: true } satisfies WorkerRequest)
        }).pipe(
          Effect.timeout("30 seconds"),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => {
            t.dead ??= failure("PGlite is closed")
            t.worker.terminate()
          }))
        )
      })
    )

    return { sql, inFlight: () => inFlight, kill: () => thread.stop("killed") }
  })
