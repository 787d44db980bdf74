/**
 * The baseline: a raw `Bun.serve` relay on loopback, what Bun itself can do with the same frames.
 * No validation, no storage, no JSON parsing: it finds the few fields it routes on by string search,
 * forwards a `send` frame verbatim to the socket registered under its `to`, and answers the sender
 * with an acknowledgement naming the `messageHash` (so the load generators run unchanged and measure
 * the same send → acknowledge → deliver round trips against it and against the node).
 * `register` and `history` get canned replies of the node's shape. Prints `listening: <port>`.
 */
import type { ServerWebSocket } from "bun"
import { field } from "./Field.ts"
import { loopback } from "./FileLimits.ts"


const bySocketKey = new Map<string, ServerWebSocket<{ key: string }>>()

const serve = (hostname: string, port: number) => Bun.serve<{ key: string }>({
  hostname,
  port,
  fetch(req, srv) {
    return srv.upgrade(req, { data: { key: "" } }) ? undefined : new Response("upgrade", { status: 426 })
  },
  websocket: {
    perMessageDeflate: false,
    backpressureLimit: 4 * 1024 * 1024,
    message(ws, message) {
      const text = typeof message === "string" ? message : new TextDecoder().decode(message)
      const requestId = field(text, "requestId")
      if (text.startsWith('{"type":"send"')) {
        bySocketKey.get(field(text, "to"))?.send(text)
        ws.send(`{"type":"message_sent","payload":{"messageHash":"${field(text, "messageHash")}","l2psStatus":"submitted"},"timestamp":${Date.now()},"requestId":"${requestId}"}`)
      } else if (text.startsWith('{"type":"register"')) {
        ws.data.key = field(text, "publicKey")
        bySocketKey.set(ws.data.key, ws)
        ws.send(`{"type":"registered","payload":{"success":true,"publicKey":"${ws.data.key}","l2psUid":"${field(text, "l2psUid")}","onlinePeers":[]},"timestamp":${Date.now()},"requestId":"${requestId}"}`)
      } else {
        ws.send(`{"type":"history_response","payload":{"messages":[],"hasMore":false},"timestamp":${Date.now()},"requestId":"${requestId}"}`)
      }
    },
    close(ws) {
      if (bySocketKey.get(ws.data.key) === ws) bySocketKey.delete(ws.data.key)
    }
  }
})

// BASELINE_LOOPBACKS=N: the same relay on 127.0.0.1 … 127.0.0.N (one port), for more sockets than one
// pair of loopback addresses has ephemeral ports.
const server = serve("127.0.0.1", 0)
for (let i = 2; i <= Number(process.env["BASELINE_LOOPBACKS"] ?? 1); i++) serve(loopback(i), server.port!)
console.log(`listening: ${server.port}`)
