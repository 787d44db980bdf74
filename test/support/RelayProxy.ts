/**
 * A relay between a client and a node that can withhold, reorder or change what the node sends the
 * client: each frame from the node goes through `toClient`, which returns the frames to pass on now
 * (none to hold or drop one, several to release held ones). What the client sends passes unchanged.
 * Stands for a node (or anything on the path) that does not play fair. A binary frame from the node
 * (capability "binary") reaches `toClient` as the JSON text it stands for, and goes on as that text (a
 * client reads both); what the client sends in binary passes as it is.
 */
import { decodeBinary } from "../../src/domain/BinaryFrames.ts"
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
          let text: string
          if (typeof e.data === "string") text = e.data
          else {
            const d = decodeBinary(new Uint8Array(e.data as ArrayBuffer))
            if (d._tag === "Bad") throw new Error(`RelayProxy: the node sent a bad binary frame: ${d.message}`)
            text = JSON.stringify(d.frame)
          }
          for (const f of toClient(text)) ws.send(f)
        }
        upstream.onclose = () => ws.close()
      },
      message(ws, message) {
        const data = typeof message === "string" ? message : new Uint8Array(message)
        if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.send(data)
        else ws.data.pending.push(data)
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
