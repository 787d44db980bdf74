/**
 * `npm run bench -- --cluster [--quick]`: three nodes on this machine (a private nats-server, one
 * Postgres database) against one node alone on a database of its own, in the same run. Every pair has
 * its sender and its recipient on different nodes, spread over the six ordered pairs of nodes; the
 * node alone carries the same pairs. Measured: acknowledged msg/s (closed loop on acks, so the figure
 * holds whether or not deliveries come), ack and delivery p99 at a fixed offered rate, the ratio of
 * the two setups, and the CPU each node, the database's backends and NATS used (from /proc).
 * Deliveries are waited for a bounded grace after each window; what has not arrived by then is
 * reported as undelivered, never waited for. The last line printed is one JSON object.
 *
 * Needs a Postgres server: DATABASE_URL (or TEST_DATABASE_URL) names it; a database is made and
 * dropped for each setup.
 */
import { SQL } from "bun"
import * as fs from "node:fs"
import * as Nats from "../test/cluster/NatsServer.ts"
import { spawnGenerators, type Generators } from "./Generators.ts"
import { cpuSecondsOf, fmt, median, percentile } from "./Stats.ts"
import { createDatabase, startBenchNode, type Target } from "./Targets.ts"

const quick = process.argv.includes("--quick")
const cfg = quick
  ? { rounds: 1, pairs: 12, window: 8, warmupMs: 500, durationMs: 2000, graceMs: 1500, rate: 300, rateMs: 2000 }
  : { rounds: 3, pairs: 60, window: 16, warmupMs: 1000, durationMs: 5000, graceMs: 3000, rate: 1000, rateMs: 5000 }
const GENERATORS = 2
const adminUrl = process.env["DATABASE_URL"] || process.env["TEST_DATABASE_URL"] || undefined
if (adminUrl === undefined) {
  console.error("bench --cluster needs a Postgres server: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)")
  process.exit(2)
}
const natsMissing = Nats.unavailableReason()
if (natsMissing !== undefined) {
  console.error(`bench --cluster needs nats-server: ${natsMissing}`)
  process.exit(2)
}
const log = (line: string) => console.log(line)
/** A latency in ms, or "none" when nothing arrived to time. */
const ms = (x: number) => (Number.isFinite(x) ? `${fmt(x, 1)} ms` : "none")
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
const run = (tag: string) => `${tag}-${crypto.randomUUID().slice(0, 8)}`

interface Setup {
  readonly name: string
  readonly nodes: ReadonlyArray<Target>
  readonly database: string
  readonly natsPid: () => number | undefined
  readonly stop: () => Promise<void>
}

/** Pair p: sender on `senderUrls[p % n]`, recipient on `receiverUrls[p % n]`. */
const routes = (s: Setup) => {
  if (s.nodes.length === 1) return { senderUrls: [s.nodes[0]!.url], receiverUrls: [s.nodes[0]!.url] }
  const ordered = s.nodes.flatMap((a, i) => s.nodes.flatMap((b, j) => (i === j ? [] : [[a.url, b.url] as const])))
  return { senderUrls: ordered.map(([a]) => a), receiverUrls: ordered.map(([, b]) => b) }
}

const setupPairs = async (gens: Generators, s: Setup, tag: string) => {
  const r = routes(s)
  const share = (i: number) => Math.floor(cfg.pairs / gens.size) + (i < cfg.pairs % gens.size ? 1 : 0)
  let first = 0
  const starts = Array.from({ length: gens.size }, (_, i) => ((first += share(i)), first - share(i)))
  await Promise.all(starts.map((start, i) =>
    gens.call(i, { cmd: "pairs", url: s.nodes[0]!.url, run: tag, uid: "default", first: start, count: share(i), ...r })))
}

/** CPU seconds so far of each node, of this database's Postgres backends, and of NATS. */
const cpuOf = async (s: Setup, pg: SQL) => {
  const nodes = await Promise.all(s.nodes.map((n) => cpuSecondsOf(n.pid).catch(() => Number.NaN)))
  const backends = (await pg.unsafe("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [s.database])) as Array<{ pid: number }>
  const pgCpu = new Map<number, number>()
  for (const { pid } of backends) {
    const c = await cpuSecondsOf(pid).catch(() => undefined)
    if (c !== undefined) pgCpu.set(pid, c)
  }
  const natsPid = s.natsPid()
  const nats = natsPid === undefined ? 0 : await cpuSecondsOf(natsPid).catch(() => Number.NaN)
  return { nodes, pg: pgCpu, nats }
}
type Cpu = Awaited<ReturnType<typeof cpuOf>>
/** Shares of one core over `seconds`; a backend that appeared meanwhile counts from zero. */
const cpuShare = (a: Cpu, b: Cpu, seconds: number) => ({
  nodes: b.nodes.map((x, i) => (x - a.nodes[i]!) / seconds),
  postgres: [...b.pg].reduce((sum, [pid, x]) => sum + x - (a.pg.get(pid) ?? 0), 0) / seconds,
  nats: (b.nats - a.nats) / seconds
})

interface Round {
  readonly ackedPerSec: number
  readonly deliveredPerSec: number
  readonly undelivered: number
  readonly ackP99: number
  readonly deliverP99: number
  readonly cpu: ReturnType<typeof cpuShare>
  readonly errors: number
  readonly firstError: string
}

interface AckedResult {
  acked: number
  sent: number
  seconds: number
  deliveredInWindow: number
  delivered: number
  ackLatencies: Array<number>
  deliverLatencies: Array<number>
  errors: number
  firstError: string
}

const throughputRound = async (gens: Generators, s: Setup, pg: SQL): Promise<Round> => {
  await setupPairs(gens, s, run("c"))
  const c0 = await cpuOf(s, pg)
  const t0 = performance.now()
  const results = await gens.all<AckedResult>(() => ({ cmd: "acked", window: cfg.window, warmupMs: cfg.warmupMs, durationMs: cfg.durationMs, graceMs: cfg.graceMs }))
  const c1 = await cpuOf(s, pg)
  const wall = (performance.now() - t0) / 1000
  await gens.all(() => ({ cmd: "close" }))
  const seconds = Math.max(...results.map((r) => r.seconds))
  const acked = results.reduce((a, r) => a + r.acked, 0)
  const delivered = results.reduce((a, r) => a + r.delivered, 0)
  return {
    ackedPerSec: acked / seconds,
    deliveredPerSec: results.reduce((a, r) => a + r.deliveredInWindow, 0) / seconds,
    undelivered: acked - delivered,
    ackP99: percentile(results.flatMap((r) => r.ackLatencies), 99),
    deliverP99: percentile(results.flatMap((r) => r.deliverLatencies), 99),
    cpu: cpuShare(c0, c1, wall),
    errors: results.reduce((a, r) => a + r.errors, 0),
    firstError: results.find((r) => r.firstError !== "")?.firstError ?? ""
  }
}

interface RateResult {
  scheduled: number
  completed: number
  ack: Array<number>
  deliver: Array<number>
  errors: number
}

/** Open loop at `cfg.rate` msg/s in all; the generator waits up to 3 s for what is still missing. */
const rateRound = async (gens: Generators, s: Setup) => {
  await setupPairs(gens, s, run("r"))
  const results = await gens.all<RateResult>(() => ({ cmd: "rate", rate: cfg.rate / gens.size, warmupMs: cfg.warmupMs, durationMs: cfg.rateMs }))
  await gens.all(() => ({ cmd: "close" }))
  const ack = results.flatMap((r) => r.ack)
  const deliver = results.flatMap((r) => r.deliver)
  return {
    ackP50: percentile(ack, 50),
    ackP99: percentile(ack, 99),
    deliverP50: percentile(deliver, 50),
    deliverP99: percentile(deliver, 99),
    scheduled: results.reduce((a, r) => a + r.scheduled, 0),
    acked: ack.length,
    delivered: deliver.length,
    errors: results.reduce((a, r) => a + r.errors, 0)
  }
}

const startSetup = async (count: number): Promise<Setup> => {
  const db = await createDatabase(adminUrl)
  const name = new URL(db.url).pathname.slice(1)
  const nats = count > 1 ? await Nats.create() : undefined
  const nodes: Array<Target> = []
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    await nats?.stop()
    await db.drop()
  }
  try {
    const env = (i: number): Record<string, string> =>
      nats === undefined ? {} : { NATS_URL: nats.url, NODE_ID: `b${i + 1}`, NATS_PING_INTERVAL_MS: "1000" }
    // The first node migrates the database alone; the others start together after it.
    nodes.push(await startBenchNode({ kind: "postgres", url: db.url }, env(0)))
    nodes.push(...await Promise.all(Array.from({ length: count - 1 }, (_, i) => startBenchNode({ kind: "postgres", url: db.url }, env(i + 1)))))
  } catch (e) {
    await stop()
    throw e
  }
  return { name: count === 1 ? "one node" : `${count} nodes`, nodes, database: name, natsPid: () => nats?.pid(), stop }
}

const gens = await spawnGenerators(GENERATORS)
const pg = new SQL(adminUrl, { max: 1 })
try {
  log(`machine load average at start: ${loadavg()} (shared by other work: every figure is noisy; compare the two setups, not runs)`)
  log(`cluster bench: ${quick ? "quick" : "full"} run, ${navigator.hardwareConcurrency} cores, bun ${Bun.version}; ${cfg.pairs} pairs, ` +
    `${GENERATORS} generator processes, ${cfg.rounds} round(s) of ${cfg.durationMs / 1000} s (medians), deliveries waited for ${cfg.graceMs / 1000} s after each window`)
  const measured: Record<string, { rounds: Array<Round>; rate: Awaited<ReturnType<typeof rateRound>> }> = {}
  for (const count of [1, 3]) {
    const s = await startSetup(count)
    try {
      const rounds: Array<Round> = []
      for (let r = 0; r < cfg.rounds; r++) rounds.push(await throughputRound(gens, s, pg))
      measured[s.name] = { rounds, rate: await rateRound(gens, s) }
    } finally {
      await s.stop()
    }
  }
  const one = measured["one node"]!
  const three = measured["3 nodes"]!
  const med = (rs: Array<Round>, f: (r: Round) => number) => median(rs.map(f))
  const pct = (n: number) => `${fmt(n * 100)}%`
  log("")
  log(`acknowledged throughput (closed loop on acks, ${cfg.window} unacknowledged per pair; sender and recipient on different nodes in the cluster)`)
  for (const [name, m] of [["one node", one], ["3 nodes", three]] as const) {
    const cpu = m.rounds[Math.floor(m.rounds.length / 2)]!.cpu
    log(`  ${name.padEnd(9)} ${fmt(med(m.rounds, (r) => r.ackedPerSec)).padStart(7)} msg/s acked, ${fmt(med(m.rounds, (r) => r.deliveredPerSec)).padStart(7)} msg/s delivered in the window, ` +
      `ack p99 ${ms(med(m.rounds, (r) => r.ackP99))}, delivery p99 ${ms(med(m.rounds, (r) => r.deliverP99))}, ` +
      `undelivered after ${cfg.graceMs / 1000} s: ${fmt(med(m.rounds, (r) => r.undelivered))}; ` +
      `CPU: node${cpu.nodes.length > 1 ? "s" : ""} ${cpu.nodes.map(pct).join(" / ")}, postgres backends ${pct(cpu.postgres)}, nats ${pct(cpu.nats)} of a core` +
      `${m.rounds.some((r) => r.errors > 0) ? `; ${m.rounds.reduce((a, r) => a + r.errors, 0)} errors: ${m.rounds.find((r) => r.firstError)?.firstError}` : ""}`)
  }
  const ratio = med(three.rounds, (r) => r.ackedPerSec) / med(one.rounds, (r) => r.ackedPerSec)
  log(`  ratio, acked msg/s: 3 nodes / one node = ${ratio.toFixed(2)}x`)
  log("")
  log(`latency at ${fmt(cfg.rate)} msg/s offered (open loop, ${cfg.rateMs / 1000} s measured, from when each message was due; deliveries waited for 3 s after)`)
  for (const [name, r] of [["one node", one.rate], ["3 nodes", three.rate]] as const) {
    log(`  ${name.padEnd(9)} ack p50/p99 ${ms(r.ackP50)} / ${ms(r.ackP99)}, delivery p50/p99 ${ms(r.deliverP50)} / ${ms(r.deliverP99)} ` +
      `(${fmt(r.delivered)} of ${fmt(r.scheduled)} delivered, ${fmt(r.scheduled - r.delivered)} undelivered, ${fmt(r.scheduled - r.acked)} unacknowledged)${r.errors > 0 ? `, ${r.errors} errors` : ""}`)
  }
  log("")
  log(`machine load average at end: ${loadavg()}`)
  const cpuMid = (m: typeof one) => m.rounds[Math.floor(m.rounds.length / 2)]!.cpu
  console.log(JSON.stringify({
    mode: quick ? "quick" : "full",
    pairs: cfg.pairs,
    oneNodeAckedPerSec: Math.round(med(one.rounds, (r) => r.ackedPerSec)),
    clusterAckedPerSec: Math.round(med(three.rounds, (r) => r.ackedPerSec)),
    ratio: +ratio.toFixed(2),
    oneNodeDeliveredPerSec: Math.round(med(one.rounds, (r) => r.deliveredPerSec)),
    clusterDeliveredPerSec: Math.round(med(three.rounds, (r) => r.deliveredPerSec)),
    clusterUndelivered: Math.round(med(three.rounds, (r) => r.undelivered)),
    oneNodeAckP99Ms: +one.rate.ackP99.toFixed(2),
    clusterAckP99Ms: +three.rate.ackP99.toFixed(2),
    oneNodeDeliveryP99Ms: Number.isFinite(one.rate.deliverP99) ? +one.rate.deliverP99.toFixed(2) : null,
    clusterDeliveryP99Ms: Number.isFinite(three.rate.deliverP99) ? +three.rate.deliverP99.toFixed(2) : null,
    clusterRateUndelivered: three.rate.scheduled - three.rate.delivered,
    cpu: { oneNode: cpuMid(one), cluster: cpuMid(three) }
  }))
} finally {
  await gens.stop()
  await pg.close({ timeout: 1 })
}
