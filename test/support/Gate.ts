/**
 * A TCP proxy on a free loopback port that a test can shut: while shut it drops every connection it
 * has and refuses new ones at once, so a client stays away exactly as long as the test says, however
 * long the machine takes to restart a node behind it.
 */
import * as net from "node:net"
import { freePort } from "./NodeProcess.ts"

export interface Gate {
  readonly port: number
  shut(): void
  open(): void
  close(): Promise<void>
}

export const create = async (targetPort: number): Promise<Gate> => {
  const port = freePort()
  let shut = false
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    if (shut) return void client.destroy()
    const upstream = net.connect({ host: "127.0.0.1", port: targetPort })
    sockets.add(client).add(upstream)
    const end = () => {
      sockets.delete(client)
      sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.pipe(upstream).pipe(client)
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  const dropAll = () => {
    for (const s of sockets) s.destroy()
    sockets.clear()
  }
  return {
    port,
    shut: () => {
      shut = true
      dropAll()
    },
    open: () => {
      shut = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        dropAll()
        server.close(() => resolve())
      })
  }
}
