/**
 * `DATABASE_URL=… bun run bench/sessionsHeap.ts [--sessions N] [--settle S]`: what a held session costs the node, in
 * figures a loaded machine does not move. The node holds N registered sessions (the bench's sessions
 * scenario); its RSS growth per session is read 1 s after the storm (as `run.ts` does, garbage and all),
 * then again after a full collection in the node (`HeapProbe.ts`), with the JS heap's live bytes and
 * objects per session by type.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loopbacksFor, sessionsThatFit } from "./FileLimits.ts"
import { spawnGenerators } from "./Generators.ts"
import { rssOf } from "./Stats.ts"
import { createDatabase, SESSION_NETWORKS, startBenchNode } from "./Targets.ts"

interface Probe { readonly heapSize: number; readonly heapCapacity: number; readonly objectCount: number; readonly counts: Record<string, number>; readonly rss: number }

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const fit = sessionsThatFit(arg("sessions", 10_000))
if (fit.note !== undefined) console.log(`sessions cut: ${fit.note}`)
const n = fit.sessions
const adminUrl = process.env["DATABASE_URL"]
if (adminUrl === undefined) throw new Error("DATABASE_URL is needed: PGlite's memory is the node's")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "imnode-heap-"))
process.env["BENCH_PRELOAD"] = path.join(import.meta.dir, "HeapProbe.ts")
const gens = await spawnGenerators(4)
const db = await createDatabase(adminUrl)
const target = await startBenchNode({ kind: "postgres", url: db.url }, { HEAP_PROBE_DIR: dir })
let probes = 0
const probe = async (): Promise<Probe> => {
  const file = path.join(dir, `heap-${target.pid}-${probes++}.json`)
  process.kill(target.pid, "SIGUSR2")
  while (!fs.existsSync(file)) await Bun.sleep(50)
  // The collection returns pages to the system over the next moments.
  await Bun.sleep(2000)
  return { ...JSON.parse(fs.readFileSync(file, "utf8")), rss: await rssOf(target.pid) }
}
try {
  await Bun.sleep(1000)
  const idle = await probe()
  const before = await rssOf(target.pid)
  const share = (i: number) => Math.floor(n / gens.size) + (i < n % gens.size ? 1 : 0)
  let first = 1_000_000
  await gens.all((i) => ({ cmd: "open", url: target.url, count: share(i), loopbacks: loopbacksFor(n) }))
  await gens.all((i) => ({ cmd: "register", run: `sh-${crypto.randomUUID().slice(0, 8)}`, first: (first += share(i)) - share(i), uids: SESSION_NETWORKS }))
  const answers = Array.from({ length: gens.size }, (_, i) => gens.expect<{ errors: number; firstError: string }>(i))
  const t = performance.now()
  for (let i = 0; i < gens.size; i++) gens.post(i, { cmd: "go" })
  const storm = await Promise.all(answers)
  const stormSec = (performance.now() - t) / 1000
  await Bun.sleep(1000)
  const at1s = await rssOf(target.pid)
  // The registrations' tails (presence, the probe for queued messages) still run for a while on a
  // loaded machine: what a held session costs is read once they are done.
  await Bun.sleep(arg("settle", 10) * 1000)
  const held = await probe()
  const per = (a: number, b: number) => ((b - a) / n / 1024).toFixed(2)
  const errors = storm.reduce((a, r) => a + r.errors, 0)
  console.log(`${n} sessions (load average ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}), storm ${stormSec.toFixed(2)} s${errors > 0 ? `, ${errors} refused: ${storm.find((r) => r.firstError)?.firstError}` : ""}`)
  console.log(`  RSS per session: ${per(before, at1s)} KB 1 s after the storm; ${per(idle.rss, held.rss)} KB after a full collection ${arg("settle", 10)} s later`)
  console.log(`  JS heap per session after a full collection: ${per(idle.heapSize, held.heapSize)} KB live, ${per(idle.heapCapacity, held.heapCapacity)} KB capacity, ${((held.objectCount - idle.objectCount) / n).toFixed(1)} objects`)
  const types = Object.keys(held.counts).map((k) => [k, ((held.counts[k] ?? 0) - (idle.counts[k] ?? 0)) / n] as const).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1])
  console.log(`  objects per session by type: ${types.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ")}`)
} finally {
  await target.stop()
  await gens.stop()
  await db.drop()
  fs.rmSync(dir, { recursive: true, force: true })
}
