import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  type AddedSession,
  type RosterEviction,
  type RosterSession,
  RosterStore,
  type RosterTransition
} from "../internal/RosterStore.ts"
import { LOCK_SPACE } from "./PgOwnership.ts"

/** The per-key locks' own space, apart from the node and job locks of `LOCK_SPACE`. */
const KEY_LOCK_SPACE = LOCK_SPACE + 1

const idOf = (l2psUid: string, key: string) => `${l2psUid}/${key}`

interface SessionRow {
  readonly node_id: string
  readonly sid: string
  readonly l2ps_uid: string
  readonly key: string
  readonly since: string
}

const toSession = (r: SessionRow): RosterSession => ({
  node: r.node_id,
  sid: Number(r.sid),
  l2psUid: r.l2ps_uid,
  key: r.key,
  since: Number(r.since)
})

/**
 * `cluster_sessions`. Each change takes a transaction-level advisory lock per key it touches (in
 * one order, so two nodes' batches never wait on each other in a cycle) and counts the key's
 * sessions before and after: a key's first and last session are thus decided once for the whole
 * cluster, however many nodes register it at once.
 */
export const layer: Layer.Layer<RosterStore, never, SqlClient.SqlClient> = Layer.effect(
  RosterStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const lockKeys = (ids: ReadonlyArray<string>) =>
      sql`
        SELECT count(pg_advisory_xact_lock(${KEY_LOCK_SPACE}, hashtext(k)))
        FROM (SELECT DISTINCT unnest(${[...ids].sort()}::text[]) AS k ORDER BY k) AS s`

    const counts = (keys: ReadonlyArray<{ readonly l2psUid: string; readonly key: string }>) =>
      Effect.map(
        sql<{ l2ps_uid: string; key: string; n: number }>`
          SELECT l2ps_uid, key, count(*)::int AS n FROM cluster_sessions
          WHERE NOT evicted AND (l2ps_uid, key) IN (
            SELECT * FROM unnest(${keys.map((k) => k.l2psUid)}::text[], ${keys.map((k) => k.key)}::text[]))
          GROUP BY l2ps_uid, key`,
        (rows) => new Map(rows.map((r) => [idOf(r.l2ps_uid, r.key), Number(r.n)]))
      )

    /** Runs `change` between two counts of `keys`, each under its key's lock; returns the transitions. */
    const counted = <A>(
      keys: ReadonlyArray<{ readonly l2psUid: string; readonly key: string }>,
      change: Effect.Effect<A, unknown>
    ) =>
      Effect.gen(function*() {
        const unique = new Map(keys.map((k) => [idOf(k.l2psUid, k.key), k]))
        const list = [...unique.values()]
        yield* lockKeys([...unique.keys()])
        const before = yield* counts(list)
        const result = yield* change
        const after = yield* counts(list)
        const transitions: Array<RosterTransition> = []
        for (const [id, k] of unique) {
          const was = (before.get(id) ?? 0) > 0
          const is = (after.get(id) ?? 0) > 0
          if (was !== is) transitions.push({ l2psUid: k.l2psUid, key: k.key, online: is })
        }
        return { transitions, result }
      })

    const apply = (gone: ReadonlyArray<RosterSession>, added: ReadonlyArray<AddedSession>) =>
      counted(
        [...gone, ...added],
        Effect.gen(function*() {
          if (gone.length > 0) {
            // Grouped by node: a batch is one node's, but the statement need not assume it.
            yield* sql`
              DELETE FROM cluster_sessions s USING unnest(${gone.map((g) => g.node)}::text[], ${gone.map((g) => g.sid)}::bigint[]) AS g(n, i)
              WHERE s.node_id = g.n AND s.sid = g.i`
          }
          if (added.length === 0) return [] as ReadonlyArray<RosterEviction>
          yield* sql`
            INSERT INTO cluster_sessions (node_id, sid, l2ps_uid, key, since)
            SELECT * FROM unnest(${added.map((a) => a.node)}::text[], ${added.map((a) => a.sid)}::bigint[],
              ${added.map((a) => a.l2psUid)}::text[], ${added.map((a) => a.key)}::text[], ${added.map((a) => a.since)}::bigint[])
            ON CONFLICT (node_id, sid) DO UPDATE SET l2ps_uid = EXCLUDED.l2ps_uid, key = EXCLUDED.key,
              since = EXCLUDED.since, evicted = false`
          const caps = new Map(added.map((a) => [idOf(a.l2psUid, a.key), a]))
          const capped = [...caps.values()]
          // The newest `cap` sessions of each key stay; ties (one millisecond) go by node and sid.
          const rows = yield* sql<Omit<SessionRow, "since">>`
            UPDATE cluster_sessions s SET evicted = true FROM (
              SELECT node_id, sid, c.cap,
                row_number() OVER (PARTITION BY l2ps_uid, key ORDER BY since DESC, node_id DESC, sid DESC) AS rank
              FROM cluster_sessions
              JOIN unnest(${capped.map((c) => c.l2psUid)}::text[], ${capped.map((c) => c.key)}::text[], ${capped.map((c) => c.cap)}::int[])
                AS c(l2ps_uid, key, cap) USING (l2ps_uid, key)
              WHERE NOT evicted
            ) AS r
            WHERE s.node_id = r.node_id AND s.sid = r.sid AND r.rank > r.cap
            RETURNING s.node_id, s.sid::text AS sid, s.l2ps_uid, s.key`
          return rows.map((r): RosterEviction => ({ node: r.node_id, sid: Number(r.sid), l2psUid: r.l2ps_uid, key: r.key }))
        })
      ).pipe(
        Effect.map(({ result, transitions }) => ({ transitions, evicted: result })),
        sql.withTransaction
      )

    const purgeNode = (node: string, checkAlive: boolean, staleBefore: number) =>
      Effect.gen(function*() {
        if (checkAlive) {
          // A session lock held means the node's database connection lives; the heartbeat says whether the node does.
          const [row] = yield* sql<{ free: boolean; heartbeat_at: string | null }>`
            SELECT pg_try_advisory_xact_lock(${LOCK_SPACE}, hashtext(${`node/${node}`})) AS free,
              (SELECT heartbeat_at::text FROM cluster_nodes WHERE node_id = ${node}) AS heartbeat_at`
          const stale = row?.heartbeat_at != null && Number(row.heartbeat_at) < staleBefore
          if (row?.free !== true && !stale) return undefined
        }
        const keys = yield* sql<{ l2ps_uid: string; key: string }>`
          SELECT DISTINCT l2ps_uid, key FROM cluster_sessions WHERE node_id = ${node}`
        if (keys.length === 0) return undefined
        return yield* counted(
          keys.map((k) => ({ l2psUid: k.l2ps_uid, key: k.key })),
          sql<SessionRow>`
            DELETE FROM cluster_sessions WHERE node_id = ${node}
            RETURNING node_id, sid::text AS sid, l2ps_uid, key, since::text AS since`
        )
      }).pipe(sql.withTransaction)

    return RosterStore.of({
      apply,
      snapshot: (node) =>
        Effect.map(
          sql<SessionRow & { evicted: boolean }>`
            SELECT node_id, sid::text AS sid, l2ps_uid, key, since::text AS since, evicted FROM cluster_sessions
            WHERE NOT evicted OR node_id = ${node} ORDER BY since, node_id, sid`,
          (rows) => ({
            sessions: rows.filter((r) => !r.evicted).map(toSession),
            evicted: rows.filter((r) => r.evicted).map((r) => Number(r.sid))
          })
        ),
      purge: (self, staleBefore, only) =>
        Effect.gen(function*() {
          const candidates = only !== undefined
            ? [only]
            // Nodes with a heartbeat row (written within a second of start): a scan of the sessions' node ids would grow with them.
            : (yield* sql<{ node_id: string }>`
                SELECT n.node_id FROM cluster_nodes n
                WHERE n.node_id <> ${self} AND EXISTS (SELECT 1 FROM cluster_sessions s WHERE s.node_id = n.node_id)`).map((r) => r.node_id)
          const nodes: Array<string> = []
          const removed: Array<RosterSession> = []
          const transitions: Array<RosterTransition> = []
          for (const node of candidates) {
            const done = yield* purgeNode(node, only === undefined, staleBefore)
            if (done === undefined) continue
            nodes.push(node)
            removed.push(...done.result.map(toSession))
            transitions.push(...done.transitions)
          }
          return { nodes, removed, transitions }
        })
    })
  })
)
