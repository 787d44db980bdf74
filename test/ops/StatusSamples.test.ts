/** The status page's per-second samples: a bounded ring, rates from cumulative counters, windowed percentiles. */
import { describe, expect, test } from "bun:test"
import { percentilesBetween, StatusSamples } from "../../src/ops/StatusSamples.ts"

const buckets = (counts: ReadonlyArray<number>) => {
  let total = 0
  return [0.001, 0.002, 0.004, Infinity].map((le, i) => [le, total += counts[i] ?? 0] as const)
}

describe("StatusSamples", () => {
  test("keeps the last `capacity` samples, oldest first, and no more", () => {
    const s = new StatusSamples(3)
    for (let i = 0; i < 10; i++) s.add({ at: i * 1000, messagesIn: i, messagesOut: 0, latency: [] })
    expect(s.all().map((x) => x.at)).toEqual([7000, 8000, 9000])
  })

  test("rates are per second from the counters' differences, over uneven ticks", () => {
    const s = new StatusSamples(10)
    s.add({ at: 0, messagesIn: 0, messagesOut: 0, latency: [] })
    s.add({ at: 1000, messagesIn: 5, messagesOut: 10, latency: [] })
    s.add({ at: 3000, messagesIn: 9, messagesOut: 10, latency: [] })
    expect(s.rates()).toEqual([{ at: 1000, in: 5, out: 10 }, { at: 3000, in: 2, out: 0 }])
  })

  test("percentiles count only the commits inside the window, as bucket upper bounds", () => {
    const s = new StatusSamples(100)
    s.add({ at: 0, messagesIn: 0, messagesOut: 0, latency: buckets([0, 0, 0, 0]) })
    // An old burst of slow commits, then only fast ones.
    s.add({ at: 1000, messagesIn: 0, messagesOut: 0, latency: buckets([0, 0, 50, 0]) })
    for (let i = 2; i < 5; i++) s.add({ at: i * 1000, messagesIn: 0, messagesOut: 0, latency: buckets([30 * (i - 1), 0, 50, 0]) })
    expect(s.percentiles(2)).toEqual({ commits: 60, p50: 0.001, p90: 0.001, p99: 0.001 })
    expect(s.percentiles(60).p99).toBe(0.004)
    expect(percentilesBetween([], buckets([98, 1, 0, 1]))).toEqual({ commits: 100, p50: 0.001, p90: 0.001, p99: 0.002 })
    expect(percentilesBetween([], buckets([0, 0, 0, 0]))).toEqual({ commits: 0, p50: null, p90: null, p99: null })
  })
})
