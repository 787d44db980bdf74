/**
 * A relay between a client and a node that can withhold, reorder or change what the node sends the
 * client: each frame from the node goes through `toClient`, which returns the frames to pass on now
 * (none to hold or drop one, several to release held ones). What the client sends passes unchanged.
 * Stands for a node (or anything on the path) that does not play fair. Binary frames (a client that
 * asked for them) are shown to `toClient` as the JSON frames they stand for and written back in binary.
 */
import { decodeBinary, toBinary } from "../../src/domain/BinaryFrames.ts"
import { freePort } from "./NodeProcess.ts"

export interface RelayProxy {
  readonly url: string
  /** Closes every client's connection (they reconnect through the relay). */
  dropClients(): void
  stop(): void
}

export const startRelayProxy = (upstreamUrl: string, toClient: (frame: string) => ReadonlyArray<string>): RelayProxy => {
  const port = freePort()
  interface Link { upstream: WebSocket; pending: Array<string | Uint8Array> }
  const clients = new Set<Bun.ServerWebSocket<Link>>()
  const server = Bun.serve<Link>({
    hostname: "127.0.0.1",
    port,
    fetch: (req, srv) => (srv.upgrade(req, { data: { upstream: undefined as unknown as WebSocket, pending: [] } }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open(ws) {
        clients.add(ws)
        const upstream = new WebSocket(upstreamUrl)
        upstream.binaryType = "arraybuffer"
        ws.data.upstream = upstream
        upstream.onopen = () => {
          for (const f of ws.data.pending) upstream.send(f)
          ws.data.pending = []
        }
        upstream.onmessage = (e) => {
          if (typeof e.data === "string") {
            for (const f of toClient(e.data)) ws.send(f)
            return
          }
          const decoded = decodeBinary(new Uint8Array(e.data as ArrayBuffer))
          if (decoded._tag === "Bad") throw new Error(`the node sent a bad binary frame: ${decoded.message}`)
          for (const f of toClient(JSON.stringify(decoded.frame))) ws.send(toBinary(f) ?? f)
        }
        upstream.onclose = () => ws.close()
      },
      message(ws, message) {
        const frame = typeof message === "string" ? message : new Uint8Array(message)
        if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.send(frame)
        else ws.data.pending.push(frame)
      },
      close(ws) {
        clients.delete(ws)
        ws.data.upstream.close()
      }
    }
  })
  return {
    url: `ws://127.0.0.1:${port}`,
    dropClients: () => clients.forEach((ws) => ws.close()),
    stop: () => server.stop(true)
  }
}
