/**
 * A private nats-server for cluster tests: its own free loopback port, never the shared one on 4222.
 * `stop` kills it (SIGKILL: a crash, not a goodbye); `start` brings it back on the same port.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { freePort } from "../support/NodeProcess.ts"

const CANDIDATES = [process.env["NATS_SERVER"], "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]

const binary = (): string | undefined => {
  for (const c of CANDIDATES) if (c !== undefined && c.length > 0 && fs.existsSync(c)) return c
  const which = spawnSync("which", ["nats-server"], { encoding: "utf8" })
  return which.status === 0 ? which.stdout.trim() : undefined
}

/** `undefined` when a nats-server can be started here, else why not. */
export const unavailableReason = (): string | undefined =>
  binary() === undefined ? "no nats-server binary (apt-get install nats-server, or set NATS_SERVER)" : undefined

export interface NatsServer {
  readonly port: number
  readonly url: string
  start(): Promise<void>
  /** SIGKILL, then wait for the exit. */
  stop(): Promise<void>
  readonly running: () => boolean
  /** The running server's process id (for its CPU, in the cluster bench). */
  readonly pid: () => number | undefined
}

const accepting = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

export const create = async (): Promise<NatsServer> => {
  const bin = binary()
  if (bin === undefined) throw new Error(unavailableReason())
  const port = freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    if (child !== undefined) return
    child = spawn(bin, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" })
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (await accepting(port)) return
      await Bun.sleep(25)
    }
    throw new Error(`nats-server did not listen on ${port} within 10 s`)
  }
  const stop = async () => {
    const c = child
    if (c === undefined) return
    child = undefined
    if (c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()))
    c.kill("SIGKILL")
    await exited
  }
  await start()
  return { port, url: `nats://127.0.0.1:${port}`, start, stop, running: () => child !== undefined, pid: () => child?.pid }
}
