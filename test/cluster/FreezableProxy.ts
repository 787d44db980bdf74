/**
 * A TCP proxy on a free loopback port that can go silent: `freeze()` drops every byte both ways and
 * closes nothing, as a cut cable or a dead peer behind a firewall looks to both ends; `thaw()` ends
 * the frozen connections (their streams lost bytes) and forwards again.
 */
import * as net from "node:net"
import { freePort } from "../support/NodeProcess.ts"

export interface FreezableProxy {
  readonly port: number
  readonly url: string
  freeze(): void
  thaw(): void
  close(): Promise<void>
}

export const create = async (targetPort: number): Promise<FreezableProxy> => {
  const port = freePort()
  let frozen = false
  const pairs = new Set<[net.Socket, net.Socket]>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: "127.0.0.1", port: targetPort })
    const pair: [net.Socket, net.Socket] = [client, upstream]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on("data", (d) => {
      if (!frozen) upstream.write(d)
    })
    upstream.on("data", (d) => {
      if (!frozen) client.write(d)
    })
    client.on("error", end).on("close", end)
    upstream.on("error", end).on("close", end)
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true
    },
    thaw: () => {
      frozen = false
      for (const [a, b] of [...pairs]) {
        a.destroy()
        b.destroy()
      }
      pairs.clear()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy()
          b.destroy()
        }
        server.close(() => resolve())
      })
  }
}
