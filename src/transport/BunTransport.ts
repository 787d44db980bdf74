import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"
import type { Server, ServerWebSocket, WebSocketCompressor } from "bun"
import type { WsCompression } from "../config/WsCompression.ts"
import { clientAddress } from "../domain/ClientAddress.ts"
import { type Connection, type ConnectionEvents, type ServeOptions, Transport, TransportError, type WriteResult } from "./Transport.ts"

interface SocketData {
  readonly remoteAddress: string
  events: ConnectionEvents | undefined
}

export const isAddressInUse = (e: unknown): boolean =>
  typeof e === "object" && e !== null && (("code" in e && e.code === "EADDRINUSE") || /in use/i.test(String(e)))

/** Opens and closes, counted at `debug`: no address or key, only how many are open. */
interface Counting {
  readonly debug: (message: string) => void
}

// The same window both ways: a shared decompressor would tell clients to reset theirs after every
// frame, and the client's frames are half the traffic.
const deflate = (c: WsCompression): boolean | { compress: WebSocketCompressor; decompress: WebSocketCompressor } =>
  c === "off" ? false : { compress: c, decompress: c }

/**
 * One socket as the relay sees it. A class, its methods shared by every socket: a held session costs a
 * few fields here instead of a closure per method (tens of thousands are held at once).
 */
class BunConnection implements Connection {
  constructor(
    private readonly ws: ServerWebSocket<SocketData>,
    private readonly server: Server<SocketData>,
    private readonly compress: boolean
  ) {}

  get remoteAddress(): string {
    return this.ws.data.remoteAddress
  }

  send(text: string): WriteResult {
    return resultOf(this.ws.send(text, this.compress))
  }

  // Never deflated: a binary frame is ciphertext and raw hashes, which do not shrink (bench/RESULTS.md,
  // "Compression off by default").
  sendBinary(data: Uint8Array): WriteResult {
    return resultOf(this.ws.send(data, false))
  }

  cork(writes: () => void): void {
    if (this.ws.readyState === 1) this.ws.cork(writes)
    else writes()
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason)
  }

  terminate(): void {
    this.ws.terminate()
  }

  subscribe(topic: string): void {
    if (this.ws.readyState === 1) this.ws.subscribe(topic)
  }

  unsubscribe(topic: string): void {
    if (this.ws.readyState === 1) this.ws.unsubscribe(topic)
  }

  publish(topic: string, text: string): void {
    this.server.publish(topic, text, this.compress)
  }
}

const resultOf = (r: number): WriteResult => (r > 0 ? "ok" : r === -1 ? "backpressure" : "closed")

const start = (options: ServeOptions, sockets: Set<ServerWebSocket<SocketData>>, port: number, counting: Counting) => {
  const proxies = options.trustedProxies ?? []
  // Bun compresses only the frames sent with this flag, and only to peers that negotiated it.
  const compress = (options.compression ?? "off") !== "off"
  const server: Server<SocketData> = Bun.serve<SocketData>({
    hostname: options.host,
    port,
    fetch(req, server) {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("WebSocket upgrade required", { status: 426 })
      }
      if (sockets.size >= options.maxConnections) {
        return new Response("Too many connections", { status: 503 })
      }
      const peer = server.requestIP(req)?.address ?? "unknown"
      const remoteAddress = proxies.length === 0 ? peer : clientAddress(peer, req.headers.get("x-forwarded-for"), proxies)
      const data: SocketData = { remoteAddress, events: undefined }
      return server.upgrade(req, { data }) ? undefined : new Response("Upgrade failed", { status: 500 })
    },
    websocket: {
      maxPayloadLength: options.maxPayloadBytes,
      // Bun's own pings keep idle but live peers connected.
      idleTimeout: options.idleTimeoutSeconds,
      sendPings: true,
      backpressureLimit: 4 * 1024 * 1024,
      closeOnBackpressureLimit: false,
      perMessageDeflate: deflate(options.compression ?? "off"),
      open(ws) {
        sockets.add(ws)
        counting.debug(`${options.name}: connection opened (${sockets.size} open)`)
        ws.data.events = options.handler.open(new BunConnection(ws, server, compress))
      },
      message(ws, message) {
        ws.data.events?.message(typeof message === "string" ? message : new Uint8Array(message))
      },
      drain(ws) {
        ws.data.events?.drain()
      },
      close(ws, code, reason) {
        sockets.delete(ws)
        counting.debug(`${options.name}: connection closed ${code} (${sockets.size} open)`)
        ws.data.events?.closed(code, reason)
      }
    }
  })
  return server
}

/** WebSockets on `Bun.serve`: own payload limit, backpressure and close codes. */
export const make = Transport.of({
  serve: (options) =>
    Effect.flatMap(Effect.runtime<never>(), (runtime) => {
      // Forked, not run in the socket's callback: a log line never holds up the socket. Decided once:
      // below `debug` an open or close costs nothing (registration storms open thousands).
      const log = Runtime.runFork(runtime)
      const debugOn = LogLevel.lessThanEqual(FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentMinimumLogLevel), LogLevel.Debug)
      const counting: Counting = { debug: debugOn ? (message) => void log(Effect.logDebug(message)) : () => {} }
      return Effect.acquireRelease(
        // A busy port fails the start: moving to the next free one would leave clients and load
        // balancers knocking on the configured one.
        Effect.try({
          try: () => {
            const sockets = new Set<ServerWebSocket<SocketData>>()
            return { server: start(options, sockets, options.port, counting), sockets }
          },
          catch: (cause) =>
            new TransportError({
              message: `${options.name}: cannot listen on ${options.host}:${options.port}: ${cause instanceof Error ? cause.message : String(cause)}`,
              cause,
              addressInUse: isAddressInUse(cause) ? { name: options.name, host: options.host, port: options.port } : undefined
            })
        }),
        ({ server, sockets }) =>
          Effect.suspend(() => {
            const open = sockets.size
            for (const ws of sockets) ws.close(1001, "Server shutting down")
            server.stop(true)
            return Effect.logInfo(`shutdown: ${options.name} stopped listening and closed ${open} connections (1001)`)
          })
      ).pipe(
        Effect.map(({ server }) => {
          const host = options.host === "0.0.0.0" ? "0.0.0.0" : server.hostname
          return { port: server.port!, url: `ws://${host}:${server.port}` }
        })
      )
    })
})

export const layer: Layer.Layer<Transport> = Layer.succeed(Transport, make)
