import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { NodeConfigShape } from "../config/NodeConfig.ts"
import { type Connection, type ConnectionEvents, ignoredEvents, PassedOn } from "../transport/Transport.ts"
import * as Deadlines from "../internal/Deadlines.ts"

/** Closes a socket that did not register in time. */
export const TIMEOUT_CODE = 4008
export const TIMEOUT_REASON = "Not registered in time"
/** Refuses a socket while those not yet registered hold their whole share (1013: try again later). */
export const BUSY_CODE = 1013
export const BUSY_REASON = "Server busy: try again later"

/**
 * The sockets of one server that have not registered yet. An unregistered socket that answers pings
 * would otherwise hold its slot forever, so each gets `registrationTimeoutMillis` to register; and
 * together they may hold only part of `maxConnections`, the rest being kept for registered sessions.
 */
export interface RegistrationDeadline {
  /**
   * Opens `conn` through `open`, which gets the function to call once the socket has registered; or,
   * while unregistered sockets hold their share, closes it with 1013 without calling `open`.
   */
  readonly guard: (conn: Connection, open: (registered: Registered) => ConnectionEvents) => ConnectionEvents
  /** Sockets open and not registered yet. */
  readonly pending: () => number
}

/** What the opened session calls once its socket has registered. */
export interface Registered {
  readonly registered: () => void
}

/** A socket under its deadline until it registers or closes. */
class Guarded extends PassedOn implements Registered, Deadlines.Due {
  constructor(private readonly conn: Connection, private readonly deadlines: Deadlines.Deadlines<Connection>) {
    super(ignoredEvents)
  }

  /** The deadline passed: closed, not registered in time. */
  due(): void {
    this.conn.close(TIMEOUT_CODE, TIMEOUT_REASON)
  }

  registered(): void {
    this.deadlines.delete(this.conn)
  }

  override closed(code: number, reason: string): void {
    this.deadlines.delete(this.conn)
    super.closed(code, reason)
  }
}

/** One per server, for the scope: its sweeper runs until the scope closes. */
export const make = (cfg: NodeConfigShape): Effect.Effect<RegistrationDeadline, never, Scope.Scope> =>
  Effect.gen(function*() {
    const share = Math.max(1, cfg.maxConnections - Math.floor(cfg.maxConnections * cfg.reservedConnectionsPercent / 100))
    const deadlines = yield* Deadlines.make<Connection>("registration-deadline", cfg.registrationTimeoutMillis)
    return {
      guard: (conn, open) => {
        if (deadlines.size() >= share) {
          conn.close(BUSY_CODE, BUSY_REASON)
          return ignoredEvents
        }
        const guarded = new Guarded(conn, deadlines)
        deadlines.add(conn, guarded)
        guarded.events = open(guarded)
        return guarded
      },
      pending: deadlines.size
    }
  })
