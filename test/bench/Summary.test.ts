import { describe, expect, test } from "bun:test"
import type { HistoryLatency, Latency, Throughput } from "../../bench/Scenarios.ts"
import { type RunFigures, summary } from "../../bench/Summary.ts"

// The bench's JSON line is built from figures; here they are made up, no bench runs.
const tput = (msgsPerSec: number): Throughput => ({ serverCpu: 1, msgsPerSec, errors: 0, firstError: "", genCpu: 0.1, procs: 2 })
const lat = (rate: number, ackP99: number): Latency => ({ rate, ackP50: ackP99 / 4, ackP99, deliverP50: 1, deliverP99: ackP99 + 1, completed: 1, errors: 0, genCpu: 0.1 })
const hist = (p99: number): HistoryLatency => ({ p50: p99 / 2, p99, requests: 50, messagesPerPage: 50, errors: 0 })

const figures = (quick: boolean, storage: "postgres" | "pglite"): RunFigures => {
  const rates = quick ? [1000, 5000] : [1000, 5000, 20000]
  return {
    quick,
    storage,
    rates,
    baseline: { one: [tput(100_000)], hundred: [tput(150_000)], latency: rates.map((r) => lat(r, 1.234)) },
    node: storage === "postgres"
      ? { postgres: { one: [tput(9_000), tput(11_000), tput(10_000)], hundred: [tput(30_000)] }, pglite: { one: [tput(5_000)], hundred: [tput(12_345.4)] } }
      : { pglite: { one: [tput(5_000)], hundred: [tput(12_000)] } },
    latency: rates.map((r) => lat(r, r === 5000 ? 15.678 : 9)),
    history: hist(4.444),
    historyMessages: quick ? 50_000 : 1_000_000,
    pgliteSide: storage === "postgres" ? { lat: lat(5000, 61.9), hist: hist(62.05) } : undefined,
    sessions: { sessions: 2000, bytesPerSession: 20_000, connectSec: 1, registerSec: 0.38249, errors: 0, firstError: "" },
    bytesPerSession: storage === "postgres" ? 20_000.6 : undefined
  }
}

describe("the bench's JSON line", () => {
  test("a quick run on Postgres carries the baseline's and PGlite's figures beside the node's", () => {
    const line = JSON.parse(JSON.stringify(summary(figures(true, "postgres"))))
    expect(line).toMatchObject({
      mode: "quick",
      storage: "postgres",
      durableMsgsPerSec1Pair: 10_000,
      baselineAckP99MsAt5k: 1.23,
      ackP99MsAt5k: 15.68,
      pgliteAckP99MsAt5k: 61.9,
      pgliteHistoryP99Ms: 62.05,
      pgliteMsgsPerSec100Pairs: 12_345,
      historyP99Ms: 4.44,
      bytesPerSession: 20_001,
      registrationStormSec: 0.382,
      ackP99MsAt20k: null
    })
  })

  test("a full run has the 20,000 msg/s figure", () => {
    expect(summary(figures(false, "postgres"))).toMatchObject({ mode: "full", ackP99MsAt20k: 9, pgliteAckP99MsAt5k: 61.9 })
  })

  test("on PGlite the PGlite figures are the primary node's, and RSS per session is null", () => {
    const line = summary(figures(true, "pglite"))
    expect(line).toMatchObject({
      storage: "pglite",
      pgliteMsgsPerSec100Pairs: 12_000,
      durableMsgsPerSec100Pairs: 12_000,
      pgliteAckP99MsAt5k: 15.68,
      pgliteHistoryP99Ms: 4.44,
      baselineAckP99MsAt5k: 1.23,
      bytesPerSession: null
    })
  })

  test("quick and full, Postgres and PGlite: the same fields, every one a number, a string or null", () => {
    const keys = (q: boolean, s: "postgres" | "pglite") => Object.keys(summary(figures(q, s))).sort()
    const all = keys(true, "postgres")
    for (const name of ["baselineAckP99MsAt5k", "pgliteAckP99MsAt5k", "pgliteHistoryP99Ms", "pgliteMsgsPerSec100Pairs"]) expect(all).toContain(name)
    expect(keys(false, "postgres")).toEqual(all)
    expect(keys(true, "pglite")).toEqual(all)
    for (const v of Object.values(summary(figures(true, "pglite")))) expect(v === null || typeof v === "number" || typeof v === "string").toBe(true)
  })
})
