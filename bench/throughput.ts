/**
 * `bun run bench/throughput.ts [--pairs N] [--seconds S] [--baseline]`: the durable throughput scenario
 * alone, for profiling one change at a time (BENCH_PROFILE / BENCH_ADMIN_PORT work as in the full bench).
 */
import * as fs from "node:fs"
import { spawnGenerators } from "./Generators.ts"
import * as S from "./Scenarios.ts"
import { fmt } from "./Stats.ts"
import { createDatabase, startBaseline, startBenchNode, tempDir } from "./Targets.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const pairs = arg("pairs", 100)
const seconds = arg("seconds", 3)
const adminUrl = process.env["DATABASE_URL"]
const gens = await spawnGenerators(2)
const db = adminUrl === undefined ? undefined : await createDatabase(adminUrl)
const dataDir = tempDir()
try {
  const target = process.argv.includes("--baseline")
    ? await startBaseline()
    : await startBenchNode(db === undefined ? { kind: "pglite", dataDir } : { kind: "postgres", url: db.url })
  try {
    const r = await S.throughput(gens, target, `t-${crypto.randomUUID().slice(0, 8)}`, pairs, { warmupMs: 500, durationMs: seconds * 1000 })
    console.log(`${target.name}, ${pairs} pairs: ${fmt(r.msgsPerSec)} msg/s, server ${fmt(r.serverCpu * 100)}% of a core (${fmt(r.serverCpu / r.msgsPerSec * 1e6)} µs of CPU per message), busiest generator ${fmt(r.genCpu * 100)}%${r.errors > 0 ? `, ${r.errors} errors: ${r.firstError}` : ""}`)
  } finally {
    await target.stop()
  }
} finally {
  await gens.stop()
  await db?.drop()
  fs.rmSync(dataDir, { recursive: true, force: true })
}
