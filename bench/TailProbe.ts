/**
 * Where a latency window's tail comes from (`throughput.ts --rate R --tail`): the node runs with
 * `LoopProbe.ts` preloaded and an admin port; around the window this reads the group commits from
 * `/metrics` (how many, how many messages each, their latency from the histogram's buckets) and the
 * event loop's stalls from the probe's file (how many per second over 5, 10 and 20 ms, the longest, and
 * how many of those over 10 ms had the JS heap shrink in them: the collector ran).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "../test/support/NodeProcess.ts"
import { fmt } from "./Stats.ts"

interface Commits {
  readonly buckets: ReadonlyArray<readonly [number, number]>
  readonly count: number
  readonly messages: number
}

const readCommits = async (adminPort: number): Promise<Commits> => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const buckets: Array<[number, number]> = []
  for (const m of text.matchAll(/^im_commit_latency_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
    buckets.push([m[1] === "+Inf" ? Infinity : Number(m[1]) * 1000, Number(m[2])])
  }
  const count = Number(/^im_commit_latency_seconds_count (\d+)/m.exec(text)?.[1] ?? 0)
  const messages = Number(/^im_messages_in_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0)
  return { buckets, count, messages }
}

/** The bucket bound under which `p` % of the window's commits ended. */
const bucketPercentile = (before: Commits, after: Commits, p: number): number => {
  const total = after.count - before.count
  for (let i = 0; i < after.buckets.length; i++) {
    const n = after.buckets[i]![1] - (before.buckets[i]?.[1] ?? 0)
    if (n >= (total * p) / 100) return after.buckets[i]![0]
  }
  return Infinity
}

interface Stall {
  readonly at: number
  readonly ms: number
  readonly heapBefore: number
  readonly heapAfter: number
}

/** Sets up the environment the node is started with; call before it starts. */
export const prepareTail = () => {
  const file = path.join(os.tmpdir(), `loop-probe-${crypto.randomUUID().slice(0, 8)}.jsonl`)
  const adminPort = freePort()
  process.env["BENCH_PRELOAD"] ??= path.join(import.meta.dir, "LoopProbe.ts")
  process.env["LOOP_PROBE_FILE"] = file
  process.env["BENCH_ADMIN_PORT"] = String(adminPort)
  let start = 0
  let before: Commits | undefined
  return {
    begin: async () => {
      before = await readCommits(adminPort)
      start = Date.now()
    },
    /** One line: the window's commits and stalls. */
    end: async (): Promise<string> => {
      const after = await readCommits(adminPort)
      const seconds = (Date.now() - start) / 1000
      // The probe writes every 250 ms.
      await Bun.sleep(300)
      const stalls: Array<Stall> = fs.existsSync(file)
        ? fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Stall).filter((s) => s.at >= start)
        : []
      fs.rmSync(file, { force: true })
      const b = before!
      const commits = after.count - b.count
      const per = (n: number) => fmt(n / seconds, 1)
      const over = (ms: number) => stalls.filter((s) => s.ms > ms)
      const gc = over(10).filter((s) => s.heapAfter < s.heapBefore).length
      const longest = stalls.reduce((m, s) => Math.max(m, s.ms), 0)
      const held = stalls.reduce((a, s) => a + s.ms, 0)
      return `group commits ${fmt(commits)} (${fmt((after.messages - b.messages) / Math.max(1, commits), 1)} messages each), ` +
        `commit latency p50 ≤ ${fmt(bucketPercentile(b, after, 50), 1)} ms, p99 ≤ ${fmt(bucketPercentile(b, after, 99), 1)} ms; ` +
        `event loop stalls per second: ${per(over(5).length)} over 5 ms, ${per(over(10).length)} over 10 ms, ${per(over(20).length)} over 20 ms ` +
        `(longest ${fmt(longest, 1)} ms; ${gc} of ${over(10).length} over 10 ms with a collection in them; held ${fmt(held / seconds / 10, 1)} % of the time in stalls over 2 ms)`
    }
  }
}
