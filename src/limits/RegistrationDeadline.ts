import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { NodeConfigShape } from "../config/NodeConfig.ts"
import type { Connection, ConnectionEvents } from "../transport/Transport.ts"
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
  readonly guard: (conn: Connection, open: (registered: () => void) => ConnectionEvents) => ConnectionEvents
  /** Sockets open and not registered yet. */
  readonly pending: () => number
}

const refused: ConnectionEvents = { message: () => {}, drain: () => {}, closed: () => {} }

/** One per server, for the scope: its sweeper runs until the scope closes. */
export const make = (cfg: NodeConfigShape): Effect.Effect<RegistrationDeadline, never, Scope.Scope> =>
  Effect.gen(function*() {
    const share = Math.max(1, cfg.maxConnections - Math.floor(cfg.maxConnections * cfg.reservedConnectionsPercent / 100))
    const deadlines = yield* Deadlines.make<Connection>("registration-deadline", cfg.registrationTimeoutMillis)
    return {
      guard: (conn, open) => {
        if (deadlines.size() >= share) {
          conn.close(BUSY_CODE, BUSY_REASON)
          return refused
        }
        deadlines.add(conn, () => conn.close(TIMEOUT_CODE, TIMEOUT_REASON))
        const events = open(() => {
          deadlines.delete(conn)
        })
        return {
          ...events,
          closed: (code, reason) => {
            deadlines.delete(conn)
            events.closed(code, reason)
          }
        }
      },
      pending: deadlines.size
    }
  })
