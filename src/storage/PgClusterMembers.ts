import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeIdentity } from "../config/NodeIdentity.ts"
import { ClusterMembers, type Member } from "../internal/ClusterMembers.ts"
import { HEARTBEAT_MILLIS, LOCK_SPACE } from "./PgOwnership.ts"

/** A node that holds its lock but has not beaten for this long is `stale`. */
export const STALE_MILLIS = 5 * HEARTBEAT_MILLIS

interface Row {
  readonly node_id: string
  readonly started_at: string
  readonly heartbeat_at: string
  readonly host: string | null
  readonly version: string | null
  readonly l2ps_port: number | null
  readonly legacy_port: number | null
  readonly admin_port: number | null
  readonly sessions: number | null
  readonly lock_pid: number | null
}

interface OwnerRow {
  readonly name: string
  readonly epoch: string
  readonly node_id: string
}

/**
 * Members from `cluster_nodes` and the database's own lock table: a node's locks are all held by one
 * backend (see PgOwnership), so a node is running while some backend holds `node/<id>`, and a job is
 * its while that same backend holds the job's lock. `cluster_owners` alone would still name a dead
 * owner until another node takes over.
 */
export const layer: Layer.Layer<ClusterMembers, never, SqlClient.SqlClient | NodeIdentity> = Layer.effect(
  ClusterMembers,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { id: nodeId } = yield* NodeIdentity
    // Two-key advisory locks: classid is the first key, objid the second as an unsigned oid.
    const locks = sql`
      SELECT pid, objid::bigint AS k2 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = ${LOCK_SPACE}
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
    const key = (name: Statement.Fragment) => sql`(hashtext(${name})::bigint & 4294967295)`

    const list = Effect.gen(function*() {
      const [rows, owners] = yield* Effect.all([
        sql<Row>`
          WITH locks AS (${locks})
          SELECT n.node_id, n.started_at::text AS started_at, n.heartbeat_at::text AS heartbeat_at, n.host, n.version,
                 n.l2ps_port, n.legacy_port, n.admin_port, n.sessions,
                 (SELECT l.pid FROM locks l WHERE l.k2 = ${key(sql`'node/' || n.node_id`)} LIMIT 1) AS lock_pid
          FROM cluster_nodes n ORDER BY n.node_id`,
        sql<OwnerRow>`
          WITH locks AS (${locks})
          SELECT o.name, o.epoch::text AS epoch, o.node_id FROM cluster_owners o
          WHERE EXISTS (
            SELECT 1 FROM locks job JOIN locks mine ON mine.pid = job.pid
            WHERE job.k2 = ${key(sql`o.name`)} AND mine.k2 = ${key(sql`'node/' || o.node_id`)})
          ORDER BY o.name`
      ])
      const now = yield* Clock.currentTimeMillis
      return rows.map((r): Member => {
        const heartbeatAt = Number(r.heartbeat_at)
        const age = Math.max(0, now - heartbeatAt)
        return {
          nodeId: r.node_id,
          state: r.lock_pid === null ? "gone" : age > STALE_MILLIS ? "stale" : "alive",
          startedAt: Number(r.started_at),
          heartbeatAt,
          heartbeatAgeSeconds: Math.round(age / 100) / 10,
          host: r.host,
          version: r.version,
          ports: r.l2ps_port === null || r.legacy_port === null || r.admin_port === null
            ? null
            : { l2ps: r.l2ps_port, legacy: r.legacy_port, admin: r.admin_port },
          sessions: r.sessions,
          owned: owners.filter((o) => o.node_id === r.node_id).map((o) => `${o.name}#${o.epoch}`)
        }
      })
    })

    return ClusterMembers.of({
      list,
      report: (r) =>
        sql`
          UPDATE cluster_nodes SET host = ${r.host}, version = ${r.version}, l2ps_port = ${r.ports.l2ps},
            legacy_port = ${r.ports.legacy}, admin_port = ${r.ports.admin}, sessions = ${r.sessions}
          WHERE node_id = ${nodeId}`.pipe(Effect.asVoid)
    })
  })
)
