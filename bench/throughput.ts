/**
 * `bun run bench/throughput.ts [--pairs N] [--seconds S] [--warmup S] [--rounds N] [--rate R [--tail] | --sessions N | --history N] [--baseline]`:
 * the durable throughput scenario alone (or the latency at an offered rate, N sessions and their
 * registration storm, or history pages over N stored messages; `--tail`: the group commits and event-loop
 * stalls of the latency window, `TailProbe.ts`), for profiling one change at a time
 * (BENCH_PROFILE, BENCH_ADMIN_PORT and BENCH_NODE_ENV work as in the full bench).
 */
import * as fs from "node:fs"
import { spawnGenerators } from "./Generators.ts"
import * as S from "./Scenarios.ts"
import { loopbacksFor, sessionsThatFit } from "./FileLimits.ts"
import { fmt } from "./Stats.ts"
import { seedHistory } from "./SeedHistory.ts"
import { prepareTail } from "./TailProbe.ts"
import { createDatabase, SESSION_NETWORKS, startBaseline, startBenchNode, type StorageChoice, tempDir } from "./Targets.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const pairs = arg("pairs", 100)
const seconds = arg("seconds", 3)
const warmupMs = arg("warmup", 0.5) * 1000
const adminUrl = process.env["DATABASE_URL"] || undefined
// Before the generators and the node start: they inherit the raised open-file limit.
const fit = sessionsThatFit(arg("sessions", 0))
if (fit.note !== undefined && fit.sessions > 0) console.log(`sessions cut: ${fit.note}`)
const sessions = arg("sessions", 0) === 0 ? 0 : fit.sessions
const tail = process.argv.includes("--tail") && !process.argv.includes("--baseline") ? prepareTail() : undefined
const gens = await spawnGenerators(sessions > 0 ? 4 : 2)
const db = adminUrl === undefined ? undefined : await createDatabase(adminUrl)
const dataDir = tempDir()
try {
  const storage: StorageChoice = db === undefined ? { kind: "pglite", dataDir } : { kind: "postgres", url: db.url }
  const history = arg("history", 0)
  const historyRun = `h-${crypto.randomUUID().slice(0, 8)}`
  // PGlite is seeded before the node opens it; Postgres after the node has migrated it.
  const seed = () => seedHistory(storage, S.historyKey(historyRun), history, 1000)
  let seeded = history > 0 && storage.kind === "pglite" ? await seed() : undefined
  const target = process.argv.includes("--baseline") ? await startBaseline(loopbacksFor(sessions)) : await startBenchNode(storage)
  try {
    if (history > 0) seeded ??= await seed()
    if (seeded !== undefined) {
      const h = await S.historyPages(gens, target, historyRun, seeded, arg("requests", 1000))
      console.log(`${target.name}: history over ${fmt(history)} messages (seeded in ${fmt(seeded.seconds, 1)} s): p50 ${fmt(h.p50, 2)} ms, p99 ${fmt(h.p99, 2)} ms over ${h.requests} requests, ${fmt(h.messagesPerPage, 1)} messages/page${h.errors > 0 ? `, ${h.errors} refused` : ""}`)
    }
    if (sessions > 0) {
      const n = await S.sessions(gens, target, `s-${crypto.randomUUID().slice(0, 8)}`, sessions, SESSION_NETWORKS)
      console.log(`${target.name}: ${fmt(n.sessions)} sessions, ${fmt(n.bytesPerSession / 1024, 1)} KB RSS each; registration storm ${fmt(n.registerSec, 2)} s${n.errors > 0 ? `, ${n.errors} refused: ${n.firstError}` : ""}`)
    }
    const rate = arg("rate", 0)
    if (rate > 0) {
      await tail?.begin()
      const l = await S.latencyAt(gens, target, `l-${crypto.randomUUID().slice(0, 8)}`, pairs, rate, { warmupMs, durationMs: seconds * 1000 })
      if (tail !== undefined) console.log(`${target.name}, the window with its warm-up: ${await tail.end()}`)
      console.log(`${target.name}, ${pairs} pairs at ${fmt(rate)} msg/s: ack p50/p99 ${fmt(l.ackP50, 1)}/${fmt(l.ackP99, 1)} ms, delivery p50/p99 ${fmt(l.deliverP50, 1)}/${fmt(l.deliverP99, 1)} ms, completed ${fmt(l.completed * 100, 1)}%`)
    }
    const rounds = rate > 0 || sessions > 0 || history > 0 ? 0 : arg("rounds", 1)
    for (let round = 0; round < rounds; round++) {
      const r = await S.throughput(gens, target, `t-${crypto.randomUUID().slice(0, 8)}`, pairs, { warmupMs, durationMs: seconds * 1000 })
      console.log(`${target.name}, ${pairs} pairs: ${fmt(r.msgsPerSec)} msg/s, server ${fmt(r.serverCpu * 100)}% of a core (${fmt(r.serverCpu / r.msgsPerSec * 1e6)} µs of CPU per message), busiest generator ${fmt(r.genCpu * 100)}%${r.errors > 0 ? `, ${r.errors} errors: ${r.firstError}` : ""}`)
    }
  } finally {
    await target.stop()
  }
} finally {
  await gens.stop()
  await db?.drop()
  fs.rmSync(dataDir, { recursive: true, force: true })
}
