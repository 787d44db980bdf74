/**
 * Three (or more) node processes as an operator runs a cluster: one Postgres database of their own,
 * a private nats-server on a free port, each node on loopback ports with its own DATA_DIR and
 * `NODE_ID` n1, n2, …; started in parallel.
 */
import { SQL } from "bun"
import { startE2eNode } from "../e2e/helpers.ts"
import type { LoadClient } from "../fault/LoadClient.ts"
import { adminQuery } from "../support/AdminQuery.ts"
import { freePort, type NodeProcess } from "../support/NodeProcess.ts"
import * as Proxy from "./FreezableProxy.ts"
import * as Nats from "./NatsServer.ts"

export const unavailableReason = (): string | undefined =>
  process.env["TEST_DATABASE_URL"] ? Nats.unavailableReason() : "TEST_DATABASE_URL is not set"

/** Fast batches and blocks, and limits out of the way of load tests. */
export const CLUSTER_ENV: Readonly<Record<string, string>> = {
  L2PS_BATCH_INTERVAL_MS: "200",
  L1_BLOCK_INTERVAL_MS: "200",
  RATE_LIMIT_PER_SEC: "100000",
  RATE_LIMIT_BURST: "100000",
  EPOCH_QUOTA: "10000000",
  OFFLINE_QUEUE_PER_PAIR: "100000",
  OFFLINE_BYTES_PER_SENDER: "1000000000",
  OFFLINE_BYTES_PER_RECIPIENT: "1000000000",
  NATS_PING_INTERVAL_MS: "500"
}

export interface Cluster {
  readonly nats: Nats.NatsServer
  readonly databaseUrl: string
  readonly nodes: Array<NodeProcess>
  /** The proxies between a node and NATS, by node index (see `start`'s `proxied`). */
  readonly proxies: ReadonlyMap<number, Proxy.FreezableProxy>
  /** A query on the cluster's database. */
  query<T = Record<string, unknown>>(text: string, params?: ReadonlyArray<unknown>): Promise<Array<T>>
  dispose(): Promise<void>
}

/** `proxied`: indexes of nodes that reach NATS through a proxy the test can freeze (a node cut off from the bus). */
export const start = async (
  count = 3,
  env: Readonly<Record<string, string>> = {},
  proxied: ReadonlyArray<number> = []
): Promise<Cluster> => {
  const base = process.env["TEST_DATABASE_URL"]!
  const db = `im_cluster_${crypto.randomUUID().replaceAll("-", "")}`
  const url = new URL(base)
  url.pathname = `/${db}`
  const databaseUrl = url.toString()
  await adminQuery(base, `CREATE DATABASE ${db}`)
  const nats = await Nats.create()
  const pool = new SQL(databaseUrl, { max: 2 })
  const nodes: Array<NodeProcess> = []
  const proxies = new Map<number, Proxy.FreezableProxy>()
  for (const i of proxied) proxies.set(i, await Proxy.create(nats.port))
  const natsFor = (i: number) => proxies.get(i)?.url ?? nats.url
  const dispose = async () => {
    await Promise.all(nodes.map((n) => n.dispose()))
    await Promise.all([...proxies.values()].map((p) => p.close()))
    await nats.stop()
    await pool.close({ timeout: 1 })
    await adminQuery(base, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  }
  try {
    // The first node runs the migrations alone; the others start together once they are done.
    const common = { ...CLUSTER_ENV, DATABASE_URL: databaseUrl, NATS_URL: nats.url, ...env }
    const admin = () => ({ ADMIN_PORT: String(freePort()), ADMIN_HOST: "127.0.0.1" })
    nodes.push(await startE2eNode({ ...common, ...admin(), NATS_URL: natsFor(0), NODE_ID: "n1" }))
    nodes.push(...await Promise.all(Array.from({ length: count - 1 }, (_, i) =>
      startE2eNode({ ...common, ...admin(), NATS_URL: natsFor(i + 1), NODE_ID: `n${i + 2}` }))))
  } catch (e) {
    await dispose()
    throw e
  }
  return {
    nats,
    databaseUrl,
    nodes,
    proxies,
    query: async <T>(text: string, params: ReadonlyArray<unknown> = []) => (await pool.unsafe(text, params as Array<unknown>)) as Array<T>,
    dispose
  }
}

/** `GET /health` of a node (its admin port is on loopback). */
export const health = async (node: NodeProcess): Promise<Record<string, any>> => {
  const res = await fetch(`http://127.0.0.1:${node.env["ADMIN_PORT"]}/health`)
  return (await res.json()) as Record<string, any>
}

/** Which node id holds `name` now, with its epoch. */
export const ownerOf = async (cluster: Cluster, name: string) => {
  const [row] = await cluster.query<{ node_id: string; epoch: string }>(
    "SELECT node_id, epoch::text AS epoch FROM cluster_owners WHERE name = $1",
    [name]
  )
  return row === undefined ? undefined : { nodeId: row.node_id, epoch: Number(row.epoch) }
}

/**
 * The end of every fault test: each acknowledged message is stored once, in exactly one batch, and
 * each network's batches are numbered 1..n and hash-chained. Returns what it found, for messages.
 */
export const checkBatches = async (cluster: Cluster, acked: ReadonlyArray<string>) => {
  const stored = await cluster.query<{ message_hash: string; batches: string }>(
    `SELECT m.message_hash, count(bm.batch_id)::text AS batches FROM l2ps_messages m
     LEFT JOIN l2ps_batch_messages bm ON bm.message_id = m.id GROUP BY m.message_hash`
  )
  const byHash = new Map(stored.map((r) => [r.message_hash, Number(r.batches)]))
  const missing = acked.filter((h) => !byHash.has(h))
  const notInOneBatch = acked.filter((h) => byHash.has(h) && byHash.get(h) !== 1)
  const batches = await cluster.query<{ l2ps_uid: string; seq: string; batch_hash: string; prev_batch_hash: string }>(
    "SELECT l2ps_uid, seq::text AS seq, batch_hash, prev_batch_hash FROM l2ps_batches b ORDER BY b.l2ps_uid, b.seq"
  )
  const gaps: Array<string> = []
  const byNetwork = new Map<string, typeof batches>()
  for (const b of batches) byNetwork.set(b.l2ps_uid, [...(byNetwork.get(b.l2ps_uid) ?? []), b])
  for (const [uid, list] of byNetwork) {
    list.forEach((b, i) => {
      if (Number(b.seq) !== i + 1) gaps.push(`${uid}: #${b.seq} at position ${i + 1}`)
      if (i > 0 && b.prev_batch_hash !== list[i - 1]!.batch_hash) gaps.push(`${uid}: #${b.seq} not chained to #${list[i - 1]!.seq}`)
    })
  }
  return { missing, notInOneBatch, gaps, batches: batches.length }
}

/**
 * The history end of the invariant, read as a client does (pages of 200 by `before`): every
 * acknowledged message of the conversation with `peer` in it exactly once, nothing repeated, and each
 * message strictly older than the one before it (the conversation's clock row orders them).
 */
export const checkHistory = async (reader: LoadClient, peer: string, acked: ReadonlyArray<string>) => {
  const all = await reader.conversation(peer)
  const hashes = all.map((m) => String(m["messageHash"]))
  const counts = new Map<string, number>()
  for (const h of hashes) counts.set(h, (counts.get(h) ?? 0) + 1)
  return {
    missing: acked.filter((h) => !counts.has(h)),
    repeated: [...counts].filter(([, n]) => n > 1).map(([h]) => h),
    notStrictlyOlder: all.filter((m, i) => i > 0 && Number(m["timestamp"]) >= Number(all[i - 1]!["timestamp"])).length,
    messages: all.length
  }
}
