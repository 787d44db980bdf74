import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { supervise } from "../internal/supervise.ts"

/** What a session tells the watch: its socket stopped taking frames, or took them again. */
export interface StallHooks {
  readonly blocked: () => void
  readonly drained: () => void
}

/**
 * Sockets past their backpressure limit, by when they got there. One sweep for the whole server rather
 * than a timer per session: a reader that takes nothing for `limitMillis` is terminated, so that what
 * waits for it (the transport's buffer, its outbox) is freed instead of held until the idle timeout.
 */
export class StallWatch {
  private readonly since = new Map<number, { readonly at: number; readonly terminate: () => void }>()

  constructor(private readonly now: () => number, readonly limitMillis: number) {}

  /** The hooks of one session; `terminate` ends its socket at once (a stalled reader never reads a close frame). */
  hooks(id: number, terminate: () => void): StallHooks {
    return {
      blocked: () => {
        if (!this.since.has(id)) this.since.set(id, { at: this.now(), terminate })
      },
      drained: () => {
        this.since.delete(id)
      }
    }
  }

  get size(): number {
    return this.since.size
  }

  /** Terminates every socket blocked for the limit or longer; returns how many. */
  sweep(): number {
    const now = this.now()
    let closed = 0
    for (const [id, s] of this.since) {
      if (now - s.at < this.limitMillis) continue
      this.since.delete(id)
      closed++
      s.terminate()
    }
    return closed
  }
}

/** A watch swept in the current scope, a few times per limit. */
export const make = (limitMillis: number) =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const watch = new StallWatch(() => clock.unsafeCurrentTimeMillis(), limitMillis)
    const every = Math.max(100, Math.min(1000, Math.floor(limitMillis / 4)))
    yield* supervise("stall-watch/sweep", Effect.repeat(Effect.sync(() => watch.sweep()), Schedule.spaced(every)))
    return watch
  })
