/**
 * The bench's last line: one JSON object with the run's figures. Built here, apart from the run, so
 * that its fields can be checked without running a bench (`test/bench/Summary.test.ts`).
 */
import type { HistoryLatency, Latency, SessionsHeld, Throughput } from "./Scenarios.ts"
import { median } from "./Stats.ts"

export interface RunFigures {
  readonly quick: boolean
  readonly storage: "postgres" | "pglite"
  readonly baseline: { readonly one: ReadonlyArray<Throughput>; readonly hundred: ReadonlyArray<Throughput>; readonly latency: ReadonlyArray<Latency> }
  /** Throughput rounds per storage measured (the primary one, and PGlite beside Postgres). */
  readonly node: Readonly<Partial<Record<"postgres" | "pglite", { readonly one: ReadonlyArray<Throughput>; readonly hundred: ReadonlyArray<Throughput> }>>>
  /** The primary storage's latency at each of `rates`. */
  readonly latency: ReadonlyArray<Latency>
  readonly rates: ReadonlyArray<number>
  readonly history: HistoryLatency
  readonly historyMessages: number
  /** PGlite's ack latency at 5,000 msg/s and history pages, when Postgres is the primary storage. */
  readonly pgliteSide: { readonly lat: Latency; readonly hist: HistoryLatency } | undefined
  readonly sessions: SessionsHeld
  /** Undefined where RSS per session is not measured (PGlite's memory is the node's). */
  readonly bytesPerSession: number | undefined
}

const med = (xs: ReadonlyArray<Throughput>) => median(xs.map((x) => x.msgsPerSec))
const ms = (n: number | undefined) => n === undefined || !Number.isFinite(n) ? null : +n.toFixed(2)
const perSec = (xs: ReadonlyArray<Throughput> | undefined) => xs === undefined || xs.length === 0 ? null : Math.round(med(xs))

/**
 * Every field is present in quick and full runs alike, `null` where the run did not measure it: the
 * PGlite figures come from the primary node when PGlite is the primary storage, from the side runs
 * when it is Postgres.
 */
export const summary = (f: RunFigures): Record<string, number | string | null> => {
  const at = (rate: number) => f.latency[f.rates.indexOf(rate)]
  const baseAt = (rate: number) => f.baseline.latency[f.rates.indexOf(rate)]
  const primary = f.node[f.storage]
  const pglite = f.node.pglite
  const onPglite = f.storage === "pglite"
  return {
    mode: f.quick ? "quick" : "full",
    storage: f.storage,
    durableMsgsPerSec100Pairs: perSec(primary?.hundred),
    baselineMsgsPerSec100Pairs: perSec(f.baseline.hundred),
    durableMsgsPerSec1Pair: perSec(primary?.one),
    baselineMsgsPerSec1Pair: perSec(f.baseline.one),
    pgliteMsgsPerSec100Pairs: perSec(pglite?.hundred),
    pgliteMsgsPerSec1Pair: perSec(pglite?.one),
    ackP50MsAt5k: ms(at(5000)?.ackP50),
    ackP99MsAt5k: ms(at(5000)?.ackP99),
    baselineAckP99MsAt5k: ms(baseAt(5000)?.ackP99),
    pgliteAckP99MsAt5k: ms(onPglite ? at(5000)?.ackP99 : f.pgliteSide?.lat.ackP99),
    deliveryP99MsAt5k: ms(at(5000)?.deliverP99),
    ackP99MsAt20k: ms(at(20000)?.ackP99),
    sessionsHeld: f.sessions.sessions,
    bytesPerSession: f.bytesPerSession === undefined ? null : Math.round(f.bytesPerSession),
    registrationStormSec: +f.sessions.registerSec.toFixed(3),
    historyMessages: f.historyMessages,
    historyP99Ms: ms(f.history.p99),
    pgliteHistoryP99Ms: ms(onPglite ? f.history.p99 : f.pgliteSide?.hist.p99)
  }
}
