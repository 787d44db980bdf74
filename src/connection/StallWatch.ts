import * as Effect from "effect/Effect"
import * as Deadlines from "../internal/Deadlines.ts"

/** What a session tells the watch: its socket stopped taking frames, or took them again. */
export interface StallHooks {
  readonly blocked: () => void
  readonly drained: () => void
}

/**
 * Sockets past their backpressure limit. A reader that takes nothing for `limitMillis` is terminated, so
 * that what waits for it (the transport's buffer, its outbox) is freed instead of held until the idle
 * timeout; one deadline sweep for the whole server rather than a timer per session.
 */
export interface StallWatch {
  /** The hooks of one session; `terminate` ends its socket at once (a stalled reader never reads a close frame). */
  readonly hooks: (id: number, socket: { readonly terminate: () => void }) => StallHooks
}

/** A session's hooks: an object, not two closures (one per held session). */
class SessionHooks implements StallHooks, Deadlines.Due {
  constructor(
    private readonly stalled: Deadlines.Deadlines<number>,
    private readonly id: number,
    private readonly socket: { readonly terminate: () => void }
  ) {}

  blocked(): void {
    this.stalled.add(this.id, this)
  }

  due(): void {
    this.socket.terminate()
  }

  drained(): void {
    this.stalled.delete(this.id)
  }
}

/** A watch for the current scope. */
export const make = (limitMillis: number) =>
  Effect.map(Deadlines.make<number>("stall-watch", limitMillis), (stalled): StallWatch => ({
    hooks: (id, socket) => new SessionHooks(stalled, id, socket)
  }))
