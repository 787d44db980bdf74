/**
 * `bun run bench [--quick]`: the node against a raw Bun.serve relay measured in the same run, on
 * loopback. Postgres when DATABASE_URL is set (in a throwaway database), PGlite otherwise; with
 * DATABASE_URL, PGlite's throughput, ack latency at 5,000 msg/s and history pages are measured in the
 * same run too, for the ratios between the two. The last line printed is one JSON object.
 * `--bandwidth`: the bandwidth scenario of `bandwidth.ts` instead; `--cluster`: three nodes against one
 * (`cluster.ts`).
 */
import * as fs from "node:fs"
import { spawnGenerators } from "./Generators.ts"
import * as S from "./Scenarios.ts"
import { seedHistory } from "./SeedHistory.ts"
import { summary } from "./Summary.ts"
import { loopbacksFor, sessionsThatFit } from "./FileLimits.ts"
import { fmt, median, ratio } from "./Stats.ts"
import { createDatabase, SESSION_NETWORKS, startBaseline, startBenchNode, type StorageChoice, type Target, tempDir } from "./Targets.ts"

if (process.argv.includes("--cluster")) {
  // Three nodes on one database and a private NATS against one node alone (issue 17).
  await import("./cluster.ts")
  process.exit(0)
}

if (process.argv.includes("--bandwidth")) {
  // Its own scenario (issue 16): N chat users' bytes on the wire, per compression setting.
  await import("./bandwidth.ts")
  process.exit(0)
}

const quick = process.argv.includes("--quick")
const cfg = quick
  ? { rounds: 1, timing: { warmupMs: 300, durationMs: 1500 }, rateTiming: { warmupMs: 300, durationMs: 1200 }, sessions: 2_000, history: 50_000, historyRequests: 100 }
  : { rounds: 3, timing: { warmupMs: 1000, durationMs: 5000 }, rateTiming: { warmupMs: 1000, durationMs: 5000 }, sessions: 100_000, history: 1_000_000, historyRequests: 1000 }
// --quick leaves out 20k msg/s: far above the node's capacity, it only leaves a backlog.
const RATES = quick ? [1000, 5000] : [1000, 5000, 20000]
const GENERATORS = 4
const adminUrl = process.env["DATABASE_URL"] || undefined
const log = (line: string) => console.log(line)
const run = (tag: string) => `${tag}-${crypto.randomUUID().slice(0, 8)}`

// Before the generators and nodes start: they inherit the raised open-file limit.
const fit = sessionsThatFit(cfg.sessions)
cfg.sessions = fit.sessions
if (fit.note !== undefined) log(`sessions scenario cut: ${fit.note}`)
const gens = await spawnGenerators(GENERATORS)
const cleanups: Array<() => Promise<void>> = []
const storageFor = async (kind: "postgres" | "pglite"): Promise<StorageChoice> => {
  if (kind === "pglite") {
    const dataDir = tempDir()
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }))
    return { kind, dataDir }
  }
  const db = await createDatabase(adminUrl!)
  cleanups.push(db.drop)
  return { kind, url: db.url }
}
const primary: "postgres" | "pglite" = adminUrl === undefined ? "pglite" : "postgres"

const tput = async (start: () => Promise<Target>, pairs: number): Promise<Array<S.Throughput>> => {
  const target = await start()
  const out: Array<S.Throughput> = []
  try {
    for (let r = 0; r < cfg.rounds; r++) out.push(await S.throughput(gens, target, run(`t${pairs}`), pairs, cfg.timing))
  } finally {
    await target.stop()
  }
  return out
}
const med = (xs: Array<S.Throughput>) => median(xs.map((x) => x.msgsPerSec))

const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

try {
  log(`machine load average at start: ${loadavg()} (other work on these cores skews every figure)`)
  log(`bench: ${quick ? "quick" : "full"} run, ${navigator.hardwareConcurrency} cores, bun ${Bun.version}, storage ${primary}${adminUrl === undefined ? "" : " (+ pglite: throughput, ack p99 at 5,000 msg/s, history)"}`)
  log(`load: ${GENERATORS} generator processes (pairs split over 2, sessions over ${GENERATORS}); each figure is the median of ${cfg.rounds} round(s)`)

  // ── throughput ─────────────────────────────────────────────────────────────────────────────
  const base1 = await tput(startBaseline, 1)
  const base100 = await tput(startBaseline, 100)
  const kinds: Array<"postgres" | "pglite"> = adminUrl === undefined ? [primary] : ["postgres", "pglite"]
  const node: Record<string, { one: Array<S.Throughput>; hundred: Array<S.Throughput> }> = {}
  // Each node on its own fresh database: a node started on the last one's would spend the rounds
  // batching and anchoring the ~100,000 messages it left in the pipeline.
  for (const kind of kinds) {
    node[kind] = {
      one: await tput(async () => startBenchNode(await storageFor(kind)), 1),
      hundred: await tput(async () => startBenchNode(await storageFor(kind)), 100)
    }
  }
  log("")
  log("durable relay throughput (send → commit → ack → deliver; a message counts once acked and delivered; 64 in flight per pair)")
  const line = (label: string, xs: Array<S.Throughput>, base: number) =>
    log(`  ${label.padEnd(28)} ${fmt(med(xs)).padStart(9)} msg/s  ${ratio(med(xs), base).padEnd(18)} busiest generator ${fmt(Math.max(...xs.map((x) => x.genCpu)) * 100)}% of a core${xs.some((x) => x.errors > 0) ? `, ${xs.reduce((a, x) => a + x.errors, 0)} errors: ${xs.find((x) => x.firstError)?.firstError}` : ""}`)
  line("baseline, 1 pair", base1, med(base1))
  line("baseline, 100 pairs", base100, med(base100))
  for (const kind of kinds) {
    line(`node ${kind}, 1 pair`, node[kind]!.one, med(base1))
    line(`node ${kind}, 100 pairs`, node[kind]!.hundred, med(base100))
  }

  // ── latency at fixed rates, sessions, history: baseline then node on the primary storage ──
  const storage = await storageFor(primary)
  const historyRun = run("h")
  let seeded = primary === "pglite" ? await seedHistory(storage, S.historyKey(historyRun), cfg.history, 1000) : undefined
  const baseline = await startBaseline()
  const baseLat: Array<S.Latency> = []
  for (const rate of RATES) baseLat.push(await S.latencyAt(gens, baseline, run(`b${rate}`), 100, rate, cfg.rateTiming))
  const baseHist = await S.historyPages(gens, baseline, historyRun, { peers: ["0".repeat(64)], minTs: 0, maxTs: 1, seconds: 0 }, cfg.historyRequests)
  await baseline.stop()
  const target = await startBenchNode(storage)
  const lat: Array<S.Latency> = []
  let hist: S.HistoryLatency
  try {
    // History first: the rates above the node's capacity leave a backlog it works through afterwards.
    seeded ??= await seedHistory(storage, S.historyKey(historyRun), cfg.history, 1000)
    hist = await S.historyPages(gens, target, historyRun, seeded, cfg.historyRequests)
    for (const rate of RATES) lat.push(await S.latencyAt(gens, target, run(`n${rate}`), 100, rate, cfg.rateTiming))
  } finally {
    await target.stop()
  }
  // PGlite beside Postgres, on the scenarios where it was furthest behind: ack latency at 5,000 msg/s
  // and history pages, on its own fresh data directory.
  let pgliteSide: { lat: S.Latency; hist: S.HistoryLatency } | undefined
  if (primary !== "pglite") {
    const pgStorage = await storageFor("pglite")
    const pgSeeded = await seedHistory(pgStorage, S.historyKey(historyRun), cfg.history, 1000)
    const pgTarget = await startBenchNode(pgStorage)
    try {
      const pgHist = await S.historyPages(gens, pgTarget, historyRun, pgSeeded, cfg.historyRequests)
      pgliteSide = { hist: pgHist, lat: await S.latencyAt(gens, pgTarget, run("p5000"), 100, 5000, cfg.rateTiming) }
    } finally {
      await pgTarget.stop()
    }
  }
  log("")
  log(`latency at fixed offered rates (100 pairs, open loop, from when each message was due; ${cfg.rateTiming.durationMs / 1000} s measured)`)
  for (let i = 0; i < RATES.length; i++) {
    const b = baseLat[i]!
    const n = lat[i]!
    log(`  ${fmt(RATES[i]!).padStart(6)} msg/s  ack p50/p99 ${fmt(n.ackP50, 1)}/${fmt(n.ackP99, 1)} ms (baseline ${fmt(b.ackP50, 1)}/${fmt(b.ackP99, 1)}, p99 ${ratio(n.ackP99, b.ackP99)})` +
      `  delivery p50/p99 ${fmt(n.deliverP50, 1)}/${fmt(n.deliverP99, 1)} ms (baseline ${fmt(b.deliverP50, 1)}/${fmt(b.deliverP99, 1)})` +
      `  completed ${fmt(n.completed * 100, 1)}%${n.errors > 0 ? `, ${n.errors} errors` : ""}`)
  }
  log("")
  log(`history pages (limit 50, half with a random \`before\`, signed proofs) over ${fmt(cfg.history)} stored messages in 1,000 conversations (seeded in ${fmt(seeded!.seconds, 1)} s)`)
  log(`  node ${primary}: p50 ${fmt(hist.p50, 2)} ms, p99 ${fmt(hist.p99, 2)} ms over ${hist.requests} requests, ${fmt(hist.messagesPerPage, 1)} messages/page${hist.errors > 0 ? `, ${hist.errors} refused` : ""} (paced at 90/s, under the per-connection frame budget; baseline round trip p50 ${fmt(baseHist.p50, 2)}, p99 ${fmt(baseHist.p99, 2)} ms; p99 ${ratio(hist.p99, baseHist.p99)})`)
  if (pgliteSide !== undefined) {
    const b5k = baseLat[RATES.indexOf(5000)]!
    const n5k = lat[RATES.indexOf(5000)]!
    const times = (a: number, b: number) => b > 0 ? `${(a / b).toFixed(2)}x` : "-"
    log(`  node pglite: ack p99 at 5,000 msg/s ${fmt(pgliteSide.lat.ackP99, 1)} ms (${times(pgliteSide.lat.ackP99, n5k.ackP99)} postgres's, ${times(pgliteSide.lat.ackP99, b5k.ackP99)} the baseline's), completed ${fmt(pgliteSide.lat.completed * 100, 1)}%; ` +
      `history p99 ${fmt(pgliteSide.hist.p99, 2)} ms (${times(pgliteSide.hist.p99, hist.p99)} postgres's)${pgliteSide.hist.errors > 0 ? `, ${pgliteSide.hist.errors} refused` : ""}`)
  }

  // ── sessions held and registration storm, each on a fresh server ──────────────────────────
  const bsrv = await startBaseline(loopbacksFor(cfg.sessions))
  const bSessions = await S.sessions(gens, bsrv, run("bs"), cfg.sessions, SESSION_NETWORKS).finally(() => bsrv.stop())
  const nsrv = await startBenchNode(await storageFor(primary))
  const nSessions = await S.sessions(gens, nsrv, run("ns"), cfg.sessions, SESSION_NETWORKS).finally(() => nsrv.stop())
  log("")
  log(`sessions (${fmt(cfg.sessions)} sockets over ${GENERATORS} generator processes and ${loopbacksFor(cfg.sessions)} loopback address(es), open-file limit ${fmt(fit.fileLimit)}; ${SESSION_NETWORKS.length} networks of ${cfg.sessions / SESSION_NETWORKS.length} keys: presence is per network)`)
  // PGlite lives in the node's process: its memory and the garbage of its start-up come and go with its
  // work, so the node's RSS growth says nothing about sessions there (it has come out negative).
  const perSession = primary === "pglite" ? undefined : nSessions.bytesPerSession
  log(`  node ${primary}: ${fmt(nSessions.sessions)} registered sessions held, ${perSession === undefined ? "RSS per session not measured on PGlite (its memory is the node's and comes and goes with its work; run with DATABASE_URL)" : `${fmt(perSession / 1024, 1)} KB RSS each (baseline ${fmt(bSessions.bytesPerSession / 1024, 1)} KB, ${ratio(perSession, bSessions.bytesPerSession)})`}; connect ${fmt(nSessions.connectSec, 2)} s`)
  log(`  registration storm: ${fmt(nSessions.registerSec, 2)} s for ${fmt(cfg.sessions)} registers with ed25519 proofs (baseline, unverified: ${fmt(bSessions.registerSec, 2)} s, ${ratio(nSessions.registerSec, bSessions.registerSec)})${nSessions.errors > 0 ? `; ${nSessions.errors} refused: ${nSessions.firstError}` : ""}`)

  log("")
  log(`machine load average at end: ${loadavg()}`)
  console.log(JSON.stringify(summary({
    quick,
    storage: primary,
    baseline: { one: base1, hundred: base100, latency: baseLat },
    node,
    latency: lat,
    rates: RATES,
    history: hist,
    historyMessages: cfg.history,
    pgliteSide,
    sessions: nSessions,
    bytesPerSession: perSession
  })))
} finally {
  await gens.stop()
  for (const c of cleanups) await c().catch((e) => console.error(`[bench] cleanup: ${e}`))
}
