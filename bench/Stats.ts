/** Small numeric helpers shared by the bench processes. */

/** Nearest-rank percentile of an unsorted sample (`p` in 0..100); NaN for an empty one. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const sorted = Float64Array.from(xs).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export const median = (xs: ReadonlyArray<number>): number => percentile(xs, 50)

/** `1234567` → `"1,234,567"`; fractional values keep `digits` decimals. */
export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "n/a"

/** A ratio to the baseline, as printed next to each figure. */
export const ratio = (value: number, baseline: number): string =>
  Number.isFinite(value) && Number.isFinite(baseline) && baseline > 0 ? `${(value / baseline).toFixed(2)}x baseline` : "-"

/** Resident set size of a process in bytes, from /proc (Linux). */
export const rssOf = async (pid: number): Promise<number> => {
  const status = await Bun.file(`/proc/${pid}/status`).text()
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status)
  return m === null ? Number.NaN : Number(m[1]) * 1024
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export const cpuSecondsOf = async (pid: number): Promise<number> => {
  const stat = await Bun.file(`/proc/${pid}/stat`).text()
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // utime and stime are fields 14 and 15 of the full line, 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100
}
