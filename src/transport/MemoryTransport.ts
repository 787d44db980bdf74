import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import { type ConnectionEvents, type ConnectionHandler, Transport, TransportError, type WriteResult } from "./Transport.ts"

/** More unread frames than this and the client counts as gone. */
const FRAMES_MAX = 100_000

/** The client end of an in-memory connection. */
export interface MemorySocket {
  /** Frames from the node, in order. */
  readonly frames: Queue.Dequeue<string>
  readonly send: (data: string | Uint8Array) => Effect.Effect<void>
  /** Stops reading: the node sees backpressure until `resume`. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /** Closes from the client side. */
  readonly close: Effect.Effect<void>
  /** Completes with the code when either side closes. */
  readonly closed: Effect.Effect<{ readonly code: number; readonly reason: string }>
}

/** Connections without sockets, for scenario tests and hosts that bring their own wire. */
export class MemoryTransport extends Context.Tag("im/MemoryTransport")<MemoryTransport, {
  /** Connects to the server named "l2ps" (or the only one served). */
  readonly connect: (remoteAddress?: string) => Effect.Effect<MemorySocket, TransportError>
  /** Connects to the server served under `name` (e.g. "legacy"). */
  readonly connectTo: (name: string, remoteAddress?: string) => Effect.Effect<MemorySocket, TransportError>
}>() {}

export const layer: Layer.Layer<Transport | MemoryTransport> = Layer.effectContext(
  Effect.gen(function*() {
    const handlers = yield* Ref.make<ReadonlyMap<string, ConnectionHandler>>(new Map())
    // Subscribers by server and topic (each server has its own topics, as with Bun).
    const topics = new Map<string, Map<string, Set<(text: string) => void>>>()
    const topicsOf = (server: string) => {
      let t = topics.get(server)
      if (t === undefined) topics.set(server, t = new Map())
      return t
    }
    const transport = Transport.of({
      serve: (options) =>
        Effect.acquireRelease(
          Ref.update(handlers, (m) => new Map(m).set(options.name, options.handler)).pipe(
            Effect.as({ url: `memory://${options.name}`, port: 0 })
          ),
          () =>
            Ref.update(handlers, (m) => {
              const rest = new Map(m)
              rest.delete(options.name)
              return rest
            })
        )
    })
    const connectTo = (name: string | undefined, remoteAddress = "memory") =>
      Effect.gen(function*() {
        const served = yield* Ref.get(handlers)
        const serverName = name ?? (served.has("l2ps") || served.size !== 1 ? "l2ps" : served.keys().next().value!)
        const handler = served.get(serverName)
        if (handler === undefined) return yield* new TransportError({ message: `not serving ${name ?? "l2ps"}` })
        const serverTopics = topicsOf(serverName)
        const subscribed = new Set<string>()
        const frames = yield* Queue.bounded<string>(FRAMES_MAX)
        const closedQ = yield* Queue.bounded<{ code: number; reason: string }>(1)
        let paused = false
        let isClosed = false
        let pendingDrain = false
        const deliver = (text: string) => {
          if (!isClosed && frames.unsafeOffer(text) && paused) pendingDrain = true
        }
        let closedDuringOpen: { code: number; reason: string } | undefined
        const finish = (code: number, reason: string) => {
          if (isClosed) return
          isClosed = true
          for (const topic of subscribed) serverTopics.get(topic)?.delete(deliver)
          subscribed.clear()
          closedQ.unsafeOffer({ code, reason })
          if (events === undefined) closedDuringOpen = { code, reason }
          else events.closed(code, reason)
        }
        // The handler may close the connection while it opens it (e.g. refused by a limit): as with
        // Bun, its `closed` still comes, once `open` has returned, so what it counted is released.
        let events: ConnectionEvents | undefined
        events = handler.open({
          remoteAddress,
          send: (text): WriteResult => {
            if (isClosed || !frames.unsafeOffer(text)) return "closed"
            if (paused) {
              pendingDrain = true
              return "backpressure"
            }
            return "ok"
          },
          close: (code, reason) => finish(code, reason),
          terminate: () => finish(1006, ""),
          subscribe: (topic) => {
            if (isClosed) return
            subscribed.add(topic)
            let set = serverTopics.get(topic)
            if (set === undefined) serverTopics.set(topic, set = new Set())
            set.add(deliver)
          },
          unsubscribe: (topic) => {
            subscribed.delete(topic)
            serverTopics.get(topic)?.delete(deliver)
          },
          publish: (topic, text) => {
            for (const d of [...(serverTopics.get(topic) ?? [])]) d(text)
          }
        })
        if (closedDuringOpen !== undefined) events.closed(closedDuringOpen.code, closedDuringOpen.reason)
        const closedOnce = yield* Effect.cached(Queue.take(closedQ))
        return {
          frames,
          send: (data) => Effect.sync(() => isClosed || events?.message(data)),
          pause: Effect.sync(() => {
            paused = true
          }),
          resume: Effect.sync(() => {
            paused = false
            if (pendingDrain) {
              pendingDrain = false
              events?.drain()
            }
          }),
          close: Effect.sync(() => finish(1000, "client closed")),
          closed: closedOnce
        } satisfies MemorySocket
      })
    return Context.make(Transport, transport).pipe(Context.add(MemoryTransport, {
      connect: (remoteAddress) => connectTo(undefined, remoteAddress),
      connectTo
    }))
  })
)
