import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { isBinaryFrame } from "../../domain/BinaryFrames.ts"

/** The socket could not be opened. */
export class LinkError extends Data.TaggedError("LinkError")<{ readonly message: string }> {}

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

/** Marks the end of `incoming`: nothing follows it. */
export const Closed: unique symbol = Symbol.for("im-client/Link/Closed")
/** A received frame: JSON text, or a frame in the binary encoding (src/domain/BinaryFrames.ts). */
export type Frame = string | Uint8Array
export type Incoming = Frame | typeof Closed

/** One open WebSocket: frames in arrival order, then `Closed`. */
export interface Link {
  readonly incoming: Queue.Dequeue<Incoming>
  /** False when the socket is no longer open (the frame is not written). */
  readonly send: (frame: Frame) => Effect.Effect<boolean>
  readonly close: Effect.Effect<void>
  readonly closed: Deferred.Deferred<CloseInfo>
}

const decoder = new TextDecoder()

/** A binary message in the binary encoding is kept as bytes; any other is JSON text sent as binary. */
const frameOf = (data: unknown): Frame | undefined => {
  if (typeof data === "string") return data
  const bytes = data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : undefined
  if (bytes === undefined) return undefined
  return isBinaryFrame(bytes) ? bytes : decoder.decode(bytes)
}

/**
 * Opens `url` with the platform WebSocket; the socket is closed with the scope. Frames are offered
 * synchronously in the socket's callback, so their order is kept; past `capacity` unread frames the
 * socket is closed (1008), as a reader that far behind is better served by a fresh session.
 */
export const open = (url: string, capacity: number): Effect.Effect<Link, LinkError, Scope.Scope> =>
  Effect.gen(function*() {
    // `capacity` frames, and one place more for the close marker.
    const incoming = yield* Queue.bounded<Incoming>(capacity + 1)
    const closed = yield* Deferred.make<CloseInfo>()
    // The opening is interruptible (its canceller closes the socket): a server that accepts the TCP
    // connection and never answers would otherwise hold `connect` past its timeout, for ever.
    const ws = yield* Effect.acquireRelease(
      Effect.interruptible(Effect.async<WebSocket, LinkError>((resume) => {
        let socket: WebSocket
        try {
          socket = new WebSocket(url)
        } catch (e) {
          resume(Effect.fail(new LinkError({ message: e instanceof Error ? e.message : String(e) })))
          return
        }
        socket.binaryType = "arraybuffer"
        let opened = false
        socket.onopen = () => {
          opened = true
          resume(Effect.succeed(socket))
        }
        socket.onmessage = (event: MessageEvent) => {
          const frame = frameOf(event.data)
          if (frame === undefined) return
          const size = incoming.unsafeSize()
          if (Option.isSome(size) && size.value >= capacity) {
            socket.close(1008, "client inbox full")
            return
          }
          Queue.unsafeOffer(incoming, frame)
        }
        socket.onclose = (event: CloseEvent) => {
          Queue.unsafeOffer(incoming, Closed)
          Deferred.unsafeDone(closed, Exit.succeed({ code: event.code, reason: event.reason }))
          if (!opened) resume(Effect.fail(new LinkError({ message: `cannot connect to ${url} (close ${event.code})` })))
        }
        socket.onerror = () => {
          if (!opened) resume(Effect.fail(new LinkError({ message: `cannot connect to ${url}` })))
        }
        return Effect.sync(() => socket.close())
      })),
      (socket) => Effect.sync(() => socket.close())
    )
    const send = (frame: Frame) =>
      Effect.sync(() => {
        if (ws.readyState !== WebSocket.OPEN) return false
        try {
          ws.send(frame)
          return true
        } catch {
          return false
        }
      })
    return { incoming, send, close: Effect.sync(() => ws.close()), closed }
  })
