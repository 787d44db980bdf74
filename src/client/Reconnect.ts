import * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"

/** Reconnection of both clients: the SDK's constants by default (§3.2.5, §3.3.4). */
export interface ReconnectOptions {
  /** Delay before the first attempt after a drop (default 1000 ms); it doubles on each failure… */
  readonly baseDelayMillis: number
  /** …up to this cap (default 30000 ms). */
  readonly maxDelayMillis: number
  /** Attempts in a row before giving up (default 10); a successful open starts the count again. */
  readonly maxAttempts: number
}

export const defaultReconnect: ReconnectOptions = { baseDelayMillis: 1000, maxDelayMillis: 30_000, maxAttempts: 10 }

export const reconnectOptions = (o: Partial<ReconnectOptions> | undefined): ReconnectOptions => ({
  ...defaultReconnect,
  ...o
})

/**
 * The delays between attempts: `min(base · 2^n, max)` for n = 0 … maxAttempts-1, then done. Its output
 * is the delay about to be slept, so a caller can announce it.
 */
export const schedule = (o: ReconnectOptions): Schedule.Schedule<Duration.Duration> => {
  const cap = Duration.millis(o.maxDelayMillis)
  return Schedule.exponential(Duration.millis(o.baseDelayMillis), 2).pipe(
    Schedule.map((d) => Duration.min(d, cap)),
    Schedule.modifyDelay((d) => Duration.min(d, cap)),
    Schedule.intersect(Schedule.recurs(o.maxAttempts)),
    Schedule.map(([d]) => d)
  )
}
