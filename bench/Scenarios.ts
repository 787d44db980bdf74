/**
 * The measured scenarios, each run the same way against the baseline and the node. Generators split
 * the pairs (and the offered rate) between them; their CPU use is returned so the report can show
 * whether the clients, not the server, were the limit.
 */
import { loopbacksFor } from "./FileLimits.ts"
import type { Generators } from "./Generators.ts"
import { identity } from "./Keys.ts"
import type { Seeded } from "./SeedHistory.ts"
import { cpuSecondsOf, percentile, rssOf } from "./Stats.ts"
import type { Target } from "./Targets.ts"

export interface Timing { readonly warmupMs: number; readonly durationMs: number }

/** Pairs spread over the first `procs` generators; sender i and receiver i are in the same process. */
const setupPairs = async (gens: Generators, target: Target, run: string, pairs: number, procs: number) => {
  const share = (i: number) => Math.floor(pairs / procs) + (i < pairs % procs ? 1 : 0)
  let first = 0
  const starts = Array.from({ length: procs }, (_, i) => ((first += share(i)), first - share(i)))
  await Promise.all(starts.map((start, i) =>
    gens.call(i, { cmd: "pairs", url: target.url, run, uid: "default", first: start, count: share(i) })))
  return procs
}

const closeAll = (gens: Generators) => gens.all(() => ({ cmd: "close" }))

export interface Throughput { readonly serverCpu: number; readonly msgsPerSec: number; readonly errors: number; readonly firstError: string; readonly genCpu: number; readonly procs: number }

/** Closed loop: each pair keeps `window` messages in flight; a message counts once acked AND delivered. */
export const throughput = async (gens: Generators, target: Target, run: string, pairs: number, t: Timing, window = 64): Promise<Throughput> => {
  const procs = await setupPairs(gens, target, run, pairs, Math.min(pairs, gens.size >= 2 ? 2 : 1))
  const cpu0 = await cpuSecondsOf(target.pid)
  const t0 = performance.now()
  const results = await Promise.all(Array.from({ length: procs }, (_, i) =>
    gens.call<{ completed: number; seconds: number; errors: number; firstError: string; cpuSeconds: number; wallSeconds: number }>(i, { cmd: "closed", ...t, window })))
  const serverCpu = ((await cpuSecondsOf(target.pid)) - cpu0) / ((performance.now() - t0) / 1000)
  await closeAll(gens)
  return {
    serverCpu,
    msgsPerSec: results.reduce((a, r) => a + r.completed / r.seconds, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    firstError: results.find((r) => r.firstError !== "")?.firstError ?? "",
    // Busiest generator process, as a share of one core.
    genCpu: Math.max(...results.map((r) => r.cpuSeconds / r.wallSeconds)),
    procs
  }
}

export interface Latency {
  readonly rate: number
  readonly ackP50: number
  readonly ackP99: number
  readonly deliverP50: number
  readonly deliverP99: number
  /** Share of the messages offered in the measured window that were acked and delivered in time. */
  readonly completed: number
  readonly errors: number
  readonly genCpu: number
}

/** Open loop at a fixed total rate over `pairs` pairs; latency counts from when a message was due. */
export const latencyAt = async (gens: Generators, target: Target, run: string, pairs: number, rate: number, t: Timing): Promise<Latency> => {
  const procs = await setupPairs(gens, target, run, pairs, Math.min(pairs, gens.size >= 2 ? 2 : 1))
  const results = await Promise.all(Array.from({ length: procs }, (_, i) =>
    gens.call<{ scheduled: number; completed: number; ack: Array<number>; deliver: Array<number>; errors: number; cpuSeconds: number; wallSeconds: number }>(
      i, { cmd: "rate", rate: rate / procs, ...t })))
  await closeAll(gens)
  const ack = results.flatMap((r) => r.ack)
  const deliver = results.flatMap((r) => r.deliver)
  const scheduled = results.reduce((a, r) => a + r.scheduled, 0)
  return {
    rate,
    ackP50: percentile(ack, 50),
    ackP99: percentile(ack, 99),
    deliverP50: percentile(deliver, 50),
    deliverP99: percentile(deliver, 99),
    completed: scheduled === 0 ? 0 : results.reduce((a, r) => a + r.completed, 0) / scheduled,
    errors: results.reduce((a, r) => a + r.errors, 0),
    genCpu: Math.max(...results.map((r) => r.cpuSeconds / r.wallSeconds))
  }
}

export interface SessionsHeld {
  readonly sessions: number
  readonly bytesPerSession: number
  readonly connectSec: number
  readonly registerSec: number
  readonly errors: number
  readonly firstError: string
}

/**
 * Opens `n` sockets over all generators (not timed as part of the storm), then every generator sends
 * its pre-signed registrations at once: the storm is the time until the last `registered`. Memory per
 * session is the server's RSS growth over the idle server, read after the storm settles.
 */
export const sessions = async (gens: Generators, target: Target, run: string, n: number, uids: ReadonlyArray<string>): Promise<SessionsHeld> => {
  await Bun.sleep(500)
  const before = await rssOf(target.pid)
  const share = (i: number) => Math.floor(n / gens.size) + (i < n % gens.size ? 1 : 0)
  let firstIndex = 1_000_000
  const opened = await gens.all<{ seconds: number }>((i) => ({ cmd: "open", url: target.url, count: share(i), loopbacks: loopbacksFor(n) }))
  await gens.all((i) => ({ cmd: "register", run, first: (firstIndex += share(i)) - share(i), uids }))
  const answers = Array.from({ length: gens.size }, (_, i) => gens.expect<{ seconds: number; errors: number; firstError: string }>(i))
  const t = performance.now()
  for (let i = 0; i < gens.size; i++) gens.post(i, { cmd: "go" })
  const storm = await Promise.all(answers)
  const registerSec = (performance.now() - t) / 1000
  await Bun.sleep(1000)
  const after = await rssOf(target.pid)
  await closeAll(gens)
  const errors = storm.reduce((a, r) => a + r.errors, 0)
  return {
    sessions: n - errors,
    bytesPerSession: (after - before) / n,
    connectSec: Math.max(...opened.map((o) => o.seconds)),
    registerSec,
    errors,
    firstError: storm.find((r) => r.firstError !== "")?.firstError ?? ""
  }
}

export interface HistoryLatency { readonly p50: number; readonly p99: number; readonly requests: number; readonly messagesPerPage: number; readonly errors: number }

/** Sequential history pages (limit 50, half of them with a random `before`) from one client. */
export const historyPages = async (gens: Generators, target: Target, run: string, seeded: Seeded, requests: number): Promise<HistoryLatency> => {
  const r = await gens.call<{ latencies: Array<number>; messages: number; refused: number; errors: number }>(0, {
    cmd: "history", url: target.url, run, uid: "default", peers: seeded.peers, requests, minTs: seeded.minTs, maxTs: seeded.maxTs
  })
  await closeAll(gens)
  // The first requests warm caches and the JIT; they are left out.
  const measured = r.latencies.slice(Math.min(50, Math.floor(r.latencies.length / 10)))
  return { p50: percentile(measured, 50), p99: percentile(measured, 99), requests: measured.length, messagesPerPage: r.messages / Math.max(1, r.latencies.length), errors: r.refused }
}

/** The key that asks for history: the seed needs it before the client exists. */
export const historyKey = (run: string): string => identity(run, 0).publicKey
