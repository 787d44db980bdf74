import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Cidr } from "../domain/IpAddress.ts"
import type { WsCompression } from "../config/WsCompression.ts"

/** Result of writing one frame: written, buffered past the socket's limit (wait for drain), or gone. */
export type WriteResult = "ok" | "backpressure" | "closed"

/** The server side of one WebSocket, as the relay sees it. */
/** One socket. Its methods are called on it, never taken off it (a transport may keep them on a prototype). */
export interface Connection {
  readonly remoteAddress: string
  readonly send: (text: string) => WriteResult
  /**
   * A binary frame (src/domain/BinaryFrames.ts), for a session that asked for them; a transport without
   * it gives such sessions JSON text only.
   */
  readonly sendBinary?: ((data: Uint8Array) => WriteResult) | undefined
  /**
   * Runs `writes` with the socket corked: the frames they send leave in one system call instead of one
   * each (a write to a loopback socket cost 6-20 µs here, most of it the kernel's).
   */
  readonly cork?: ((writes: () => void) => void) | undefined
  readonly close: (code: number, reason: string) => void
  /** Ends the connection at once, without a closing handshake (for a peer that reads nothing). */
  readonly terminate: () => void
  /** Topics: a frame published to one is written by the transport to every socket subscribed to it. */
  readonly subscribe: (topic: string) => void
  readonly unsubscribe: (topic: string) => void
  /**
   * Writes `text` to every subscriber of `topic` on this server (this socket too, when subscribed). One
   * call for any number of sockets, and frames for one socket are coalesced into one write: presence
   * goes to every session of a network, and one write per frame and socket costs a system call each.
   * Not counted in any outbox: a subscriber past the socket's backpressure limit misses the frame.
   */
  readonly publish: (topic: string, text: string) => void
}

/** What the transport calls for each connection's events; all synchronous. */
export interface ConnectionEvents {
  readonly message: (data: string | Uint8Array) => void
  readonly drain: () => void
  readonly closed: (code: number, reason: string) => void
}

/** No events: what a refused socket is given. */
export const ignoredEvents: ConnectionEvents = { message: () => {}, drain: () => {}, closed: () => {} }

/**
 * A socket's events passed on to `events` (a guard in front of a session): a subclass adds what it does
 * on `closed`. An object, not closures, since every held socket keeps one.
 */
export class PassedOn implements ConnectionEvents {
  constructor(public events: ConnectionEvents) {}

  message(data: string | Uint8Array): void {
    this.events.message(data)
  }

  drain(): void {
    this.events.drain()
  }

  closed(code: number, reason: string): void {
    this.events.closed(code, reason)
  }
}

export interface ConnectionHandler {
  readonly open: (connection: Connection) => ConnectionEvents
}

export interface ServeOptions {
  readonly name: string
  readonly host: string
  /** The port to listen on (0: any free one); a busy one fails with `TransportError.addressInUse`. */
  readonly port: number
  readonly maxPayloadBytes: number
  readonly maxConnections: number
  /** A socket that sends nothing, not even a pong to the server's pings, for this long is closed. */
  readonly idleTimeoutSeconds: number
  /** permessage-deflate for clients that offer it; none (`off`) when not given. */
  readonly compression?: WsCompression | undefined
  readonly handler: ConnectionHandler
  /**
   * Peers whose `X-Forwarded-For` gives the connection's `remoteAddress` (see `clientAddress`); none,
   * or a peer not in the list: the header is ignored.
   */
  readonly trustedProxies?: ReadonlyArray<Cidr> | undefined
}

export interface Listening {
  readonly url: string
  readonly port: number
}

export class TransportError extends Data.TaggedError("TransportError")<{
  readonly message: string
  readonly cause?: unknown
  /** Set when the port was taken: the server (`ServeOptions.name`) did not start. */
  readonly addressInUse?: { readonly name: string; readonly host: string; readonly port: number } | undefined
}> {}

/** Accepts WebSocket connections; closing the scope stops accepting and closes every socket. */
export class Transport extends Context.Tag("im/Transport")<Transport, {
  readonly serve: (options: ServeOptions) => Effect.Effect<Listening, TransportError, Scope.Scope>
}>() {}
