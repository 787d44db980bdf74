import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricState from "effect/MetricState"

/** The node's metrics (Effect's registry); `render` prints them in the Prometheus text format. */
export const connections = Metric.gauge("im_connections", { description: "Open WebSocket connections" })
export const sessions = Metric.gauge("im_sessions", { description: "Registered sessions" })
export const messagesIn = Metric.counter("im_messages_in_total", { description: "Messages accepted (committed)" })
export const messagesOut = Metric.counter("im_messages_out_total", { description: "Messages written to recipients" })
export const rateLimited = Metric.counter("im_rate_limited_total", { description: "Requests refused with RATE_LIMITED" })
export const errors = (code: string) =>
  Metric.counter("im_errors_total", { description: "Error frames sent, by code" }).pipe(Metric.tagged("code", code))
export const prekeyRefused = (frame: "bundle_fetch" | "prekeys_publish") =>
  Metric.counter("im_prekey_refused_total", { description: "Prekey requests refused by the per-key prekey limits, by frame" }).pipe(
    Metric.tagged("frame", frame)
  )
export const oneTimePrekeysServed = (kind: "opk" | "okem") =>
  Metric.counter("im_one_time_prekeys_served_total", { description: "One-time prekeys handed out (and deleted) by bundle fetches, by kind" }).pipe(
    Metric.tagged("kind", kind)
  )
export const lastResortFallbacks = Metric.counter("im_prekey_last_resort_total", {
  description: "Device bundles served without a one-time ML-KEM key (its pool empty): the last-resort key only"
})
export const offlineExpired = Metric.counter("im_offline_expired_total", { description: "Queued messages expired (failed)" })
export const replayCacheEntries = Metric.gauge("im_replay_cache_entries", { description: "Register and history proofs remembered to refuse replays" })
export const replayCacheCapacity = Metric.gauge("im_replay_cache_capacity", { description: "Proofs the replay cache holds before it refuses its big holders (REPLAY_CACHE_MAX)" })
export const commitLatency = Metric.histogram(
  "im_commit_latency_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 14 }),
  "Group-commit latency"
).pipe(Metric.mapInput((d: Duration.Duration) => Duration.toMillis(d) / 1000))

/** Makes every metric appear, at zero, before its first event. */
export const touch = Effect.all([
  Metric.incrementBy(connections, 0),
  Metric.incrementBy(sessions, 0),
  Metric.incrementBy(messagesIn, 0),
  Metric.incrementBy(messagesOut, 0),
  Metric.incrementBy(rateLimited, 0),
  Metric.incrementBy(offlineExpired, 0),
  Metric.incrementBy(prekeyRefused("bundle_fetch"), 0),
  Metric.incrementBy(prekeyRefused("prekeys_publish"), 0),
  Metric.incrementBy(oneTimePrekeysServed("opk"), 0),
  Metric.incrementBy(oneTimePrekeysServed("okem"), 0),
  Metric.incrementBy(lastResortFallbacks, 0)
], { discard: true })

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const labels = (tags: ReadonlyArray<{ key: string; value: string }>, extra: Record<string, string> = {}) => {
  const all = [...tags.map((t) => [t.key, t.value] as const), ...Object.entries(extra)]
  return all.length === 0 ? "" : `{${all.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`
}

/** Extra gauges computed at scrape time (queue depths, pipeline lag), as `[name, help, labels, value]`. */
export type Sample = readonly [name: string, help: string, labels: Record<string, string>, value: number]

export const render = (extra: ReadonlyArray<Sample> = []): Effect.Effect<string> =>
  Effect.map(Metric.snapshot, (pairs) => {
    const out: Array<string> = []
    const seen = new Set<string>()
    const header = (name: string, help: string | undefined, type: string) => {
      if (seen.has(name)) return
      seen.add(name)
      out.push(`# HELP ${name} ${help ?? name}`, `# TYPE ${name} ${type}`)
    }
    for (const { metricKey: key, metricState: state } of [...pairs].sort((a, b) => a.metricKey.name.localeCompare(b.metricKey.name))) {
      const help = key.description._tag === "Some" ? key.description.value : undefined
      if (MetricState.isCounterState(state)) {
        header(key.name, help, "counter")
        out.push(`${key.name}${labels(key.tags)} ${Number(state.count)}`)
      } else if (MetricState.isGaugeState(state)) {
        header(key.name, help, "gauge")
        out.push(`${key.name}${labels(key.tags)} ${Number(state.value)}`)
      } else if (MetricState.isHistogramState(state)) {
        header(key.name, help, "histogram")
        for (const [le, n] of state.buckets) {
          out.push(`${key.name}_bucket${labels(key.tags, { le: Number.isFinite(le) ? String(le) : "+Inf" })} ${n}`)
        }
        if (!state.buckets.some(([le]) => !Number.isFinite(le))) {
          out.push(`${key.name}_bucket${labels(key.tags, { le: "+Inf" })} ${state.count}`)
        }
        out.push(`${key.name}_sum${labels(key.tags)} ${state.sum}`, `${key.name}_count${labels(key.tags)} ${state.count}`)
      }
    }
    for (const [name, help, ls, value] of extra) {
      header(name, help, "gauge")
      out.push(`${name}${labels([], ls)} ${value}`)
    }
    return out.join("\n") + "\n"
  })
