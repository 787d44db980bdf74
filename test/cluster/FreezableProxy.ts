/**
 * A TCP proxy on a free loopback port that can go silent: `freeze()` drops every byte both ways and
 * closes nothing, as a cut cable or a dead peer behind a firewall looks to both ends; `thaw()` ends
 * the frozen connections (their streams lost bytes) and forwards again. `delay(ms)` holds what the
 * client sends for that long before forwarding it, in order: a slow link from a node to the server.
 */
import * as net from "node:net"
import { freePort } from "../support/NodeProcess.ts"

export interface FreezableProxy {
  readonly port: number
  readonly url: string
  freeze(): void
  thaw(): void
  delay(millis: number): void
  close(): Promise<void>
}

export const create = async (targetPort: number): Promise<FreezableProxy> => {
  const port = freePort()
  let frozen = false
  let delayMillis = 0
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
      if (frozen) return
      // Timers of one duration fire in the order they were set: the stream's bytes keep their order.
      if (delayMillis > 0) setTimeout(() => upstream.write(d), delayMillis)
      else upstream.write(d)
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
    delay: (millis) => {
      delayMillis = millis
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
