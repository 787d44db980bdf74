/** One second of traffic: messages accepted and written, and the commit-latency histogram then (cumulative). */
export interface Sample {
  readonly at: number
  readonly messagesIn: number
  readonly messagesOut: number
  /** `[upper bound in seconds, cumulative count]`, as the histogram holds them. */
  readonly latency: ReadonlyArray<readonly [number, number]>
}

export interface Rate {
  readonly at: number
  /** Per second, over the second before `at`. */
  readonly in: number
  readonly out: number
}

export interface Percentiles {
  /** Commits over the window; the percentiles are bucket upper bounds (seconds), null without commits. */
  readonly commits: number
  readonly p50: number | null
  readonly p90: number | null
  readonly p99: number | null
}

/**
 * The last `capacity` per-second samples, oldest dropped first: what the status page plots. Counters are
 * kept cumulative and differenced on read, so a missed tick costs one wider point, not a wrong one.
 */
export class StatusSamples {
  private readonly ring: Array<Sample | undefined>
  private next = 0
  private size = 0

  constructor(readonly capacity: number) {
    this.ring = new Array(capacity)
  }

  add(sample: Sample): void {
    this.ring[this.next] = sample
    this.next = (this.next + 1) % this.capacity
    this.size = Math.min(this.size + 1, this.capacity)
  }

  /** Oldest first. */
  all(): ReadonlyArray<Sample> {
    const out: Array<Sample> = []
    for (let i = 0; i < this.size; i++) out.push(this.ring[(this.next - this.size + i + this.capacity) % this.capacity]!)
    return out
  }

  rates(): ReadonlyArray<Rate> {
    const all = this.all()
    const out: Array<Rate> = []
    for (let i = 1; i < all.length; i++) {
      const a = all[i - 1]!
      const b = all[i]!
      const seconds = Math.max(0.001, (b.at - a.at) / 1000)
      out.push({ at: b.at, in: (b.messagesIn - a.messagesIn) / seconds, out: (b.messagesOut - a.messagesOut) / seconds })
    }
    return out
  }

  /** Commit-latency percentiles over the last `windowSeconds` samples (all of them while fewer). */
  percentiles(windowSeconds: number): Percentiles {
    const all = this.all()
    if (all.length === 0) return { commits: 0, p50: null, p90: null, p99: null }
    const last = all[all.length - 1]!.latency
    const first = all[Math.max(0, all.length - 1 - windowSeconds)]!.latency
    return percentilesBetween(all.length === 1 ? [] : first, last)
  }
}

/** Percentiles of the observations the cumulative histogram `to` holds beyond `from`. */
export const percentilesBetween = (
  from: ReadonlyArray<readonly [number, number]>,
  to: ReadonlyArray<readonly [number, number]>
): Percentiles => {
  const counts = to.map(([le, n], i) => [le, n - (from[i]?.[1] ?? 0)] as const)
  const commits = counts.length === 0 ? 0 : counts[counts.length - 1]![1]
  const at = (q: number) => {
    if (commits <= 0) return null
    const rank = Math.ceil(q * commits)
    const bucket = counts.find(([, n]) => n >= rank)
    return bucket === undefined ? null : Number.isFinite(bucket[0]) ? bucket[0] : null
  }
  return { commits, p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}
