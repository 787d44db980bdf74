import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { NodeIdentity } from "../config/NodeIdentity.ts"
import { type Fence, Ownership, type OwnershipShape } from "../internal/Ownership.ts"

/** First key of every advisory lock the node takes, so they never meet an application's own locks. */
export const LOCK_SPACE = 0x494d17

/** How often a waiting node tries a lock and an owner checks it still holds its connection. */
export const POLL_MILLIS = 500

/** How often a node writes its heartbeat row. */
export const HEARTBEAT_MILLIS = 2000

interface Want {
  readonly name: string
  readonly start: (fence: Fence) => Effect.Effect<Fiber.RuntimeFiber<unknown, unknown>>
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  fence: Fence | undefined
}

const one = (conn: Connection, text: string, params: ReadonlyArray<unknown>) =>
  Effect.map(conn.execute(text, params, undefined), (rows) => (rows as ReadonlyArray<Record<string, unknown>>)[0])

/**
 * Ownership through Postgres session-level advisory locks, all held on one connection of the pool
 * reserved for them. A node that dies, or whose connection the server drops, releases its locks with
 * it (in seconds once TCP keepalives are set, see the README); a waiting node takes them on its next
 * try. The owner checks every `POLL_MILLIS` that its connection is the same backend: a new one means
 * the locks went with the old, and its jobs stop at once. In the gap before it notices, a stale owner
 * is refused by the fence: taking a lock bumps the job's epoch in `cluster_owners`.
 */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { id: nodeId } = yield* NodeIdentity
  const layerScope = yield* Effect.scope
  const wants = new Map<string, Want>()
  let held: { readonly conn: Connection; readonly pid: string; readonly scope: Scope.CloseableScope } | undefined
  let healthy = false

  const stopWork = (w: Want) =>
    Effect.gen(function*() {
      const f = w.fiber
      w.fiber = undefined
      w.fence = undefined
      if (f !== undefined) yield* Fiber.interrupt(f)
    })

  const dropConnection = (reason: string) =>
    Effect.gen(function*() {
      const h = held
      held = undefined
      healthy = false
      const owned = [...wants.values()].filter((w) => w.fiber !== undefined).map((w) => w.name)
      if (owned.length > 0) yield* Effect.logWarning(`lost the lock connection (${reason}); stopping ${owned.join(", ")}`)
      for (const w of wants.values()) yield* stopWork(w)
      if (h !== undefined) {
        // Released to the pool, a live connection would keep the locks: give them up first.
        yield* h.conn.execute("SELECT pg_advisory_unlock_all()", [], undefined).pipe(Effect.timeout("1 second"), Effect.ignore)
        yield* Scope.close(h.scope, Exit.void)
      }
    })

  const connect = Effect.gen(function*() {
    const scope = yield* Scope.make()
    const conn = yield* sql.reserve.pipe(Scope.extend(scope), Effect.onError(() => Scope.close(scope, Exit.void)))
    const row = yield* one(conn, "SELECT pg_backend_pid()::text AS pid", []).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    // The node's own lock first: held by another process, the same NODE_ID runs twice, and this one
    // must own nothing (both would take the same jobs under one name).
    const mine = yield* one(conn, "SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok", [LOCK_SPACE, `node/${nodeId}`]).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    if (mine?.["ok"] !== true) {
      yield* Scope.close(scope, Exit.void)
      return yield* Effect.fail(new Error(`another running node holds NODE_ID ${nodeId}: each node needs its own`))
    }
    held = { conn, pid: String(row?.["pid"]), scope }
    healthy = true
  })

  const startedAt = yield* Clock.currentTimeMillis
  let lastBeat = 0
  let lastFailure = ""
  const heartbeat = (conn: Connection) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (now - lastBeat < HEARTBEAT_MILLIS) return
      lastBeat = now
      yield* conn.execute(
        `INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at) VALUES ($1, $2, $3)
         ON CONFLICT (node_id) DO UPDATE SET started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at`,
        [nodeId, startedAt, now],
        undefined
      )
    })

  const tryTake = (conn: Connection, w: Want) =>
    Effect.gen(function*() {
      const got = yield* one(conn, "SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok", [LOCK_SPACE, w.name])
      if (got?.["ok"] !== true) return
      const now = yield* Clock.currentTimeMillis
      const row = yield* one(
        conn,
        `INSERT INTO cluster_owners (name, epoch, node_id, since) VALUES ($1, 1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET epoch = cluster_owners.epoch + 1, node_id = EXCLUDED.node_id, since = EXCLUDED.since
         RETURNING epoch::text AS epoch`,
        [w.name, nodeId, now]
      )
      w.fence = { name: w.name, epoch: Number(row?.["epoch"]) }
      yield* Effect.logInfo(`took ownership of ${w.name} (epoch ${w.fence.epoch})`)
      w.fiber = yield* w.start(w.fence)
    })

  const tick = Effect.gen(function*() {
    if (held === undefined) {
      const ok = yield* Effect.either(connect)
      if (ok._tag === "Left") {
        // Said once per cause, not at every poll.
        const why = String(ok.left)
        if (why !== lastFailure) yield* Effect.logError("cannot hold this node's locks", ok.left)
        lastFailure = why
        return
      }
      lastFailure = ""
    }
    const h = held!
    const same = yield* one(h.conn, "SELECT pg_backend_pid()::text AS pid", []).pipe(
      Effect.timeout("2 seconds"),
      Effect.map((r) => String(r?.["pid"]) === h.pid),
      Effect.orElseSucceed(() => false)
    )
    if (!same) return yield* dropConnection("no answer, or a new backend")
    yield* heartbeat(h.conn)
    for (const w of wants.values()) {
      // A job whose work ended (a defect past its own supervision) hands its lock back to be tried anew.
      if (w.fiber !== undefined && Option.isSome(yield* Fiber.poll(w.fiber))) {
        w.fiber = undefined
        w.fence = undefined
        yield* one(h.conn, "SELECT pg_advisory_unlock($1, hashtext($2))", [LOCK_SPACE, w.name]).pipe(Effect.ignore)
      }
      if (w.fiber === undefined) yield* tryTake(h.conn, w)
    }
  })

  yield* tick.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("ownership check failed", cause).pipe(Effect.zipRight(dropConnection("error")))),
    Effect.repeat(Schedule.spaced(POLL_MILLIS)),
    Effect.forkIn(layerScope)
  )
  yield* Effect.addFinalizer(() => dropConnection("stopping").pipe(Effect.ignore))

  const runOwned: OwnershipShape["runOwned"] = (name, work) =>
    Effect.gen(function*() {
      const ctx = yield* Effect.context<any>()
      const want: Want = {
        name,
        start: (fence) =>
          Effect.scoped(Effect.zipRight(work(fence), Effect.never)).pipe(
            Effect.provide(ctx as Context.Context<never>),
            Effect.annotateLogs({ owned: name }),
            Effect.forkIn(layerScope)
          ) as unknown as Effect.Effect<Fiber.RuntimeFiber<unknown, unknown>>,
        fiber: undefined,
        fence: undefined
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => wants.set(name, want)),
        () =>
          Effect.gen(function*() {
            wants.delete(name)
            const owned = want.fiber !== undefined
            yield* stopWork(want)
            if (owned && held !== undefined) {
              yield* one(held.conn, "SELECT pg_advisory_unlock($1, hashtext($2))", [LOCK_SPACE, name]).pipe(Effect.ignore)
            }
          })
      )
    })

  return Ownership.of({
    kind: "postgres",
    runOwned,
    owned: Effect.sync(() => [...wants.values()].flatMap((w) => (w.fence === undefined ? [] : [w.fence]))),
    healthy: Effect.sync(() => healthy)
  })
})

export const layer: Layer.Layer<Ownership, never, SqlClient.SqlClient | NodeIdentity> = Layer.scoped(Ownership, make)
