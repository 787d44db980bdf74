/**
 * A WebSocket server whose port is taken fails to start (it used to move to the next free port, where
 * clients and load balancers would not look), and the node's start-up line names the setting.
 */
import { afterAll, expect, test } from "bun:test"
import { Cause, Effect, Exit } from "effect"
import { describe as describeFailure } from "../../src/node/StartupFailure.ts"
import * as BunTransport from "../../src/transport/BunTransport.ts"

const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") })
afterAll(() => other.stop(true))

const serve = (name: string, port: number) =>
  BunTransport.make.serve({
    name,
    host: "127.0.0.1",
    port,
    maxPayloadBytes: 1024,
    maxConnections: 10,
    idleTimeoutSeconds: 10,
    handler: { open: () => ({ message: () => {}, drain: () => {}, closed: () => {} }) }
  }).pipe(Effect.scoped, Effect.exit, Effect.runPromise)

test("a taken port fails with the server, host and port; the start-up line names the setting", async () => {
  const port = other.port!
  const exit = await serve("legacy", port)
  expect(Exit.isFailure(exit)).toBe(true)
  if (Exit.isSuccess(exit)) return
  const [error] = Cause.failures(exit.cause)
  expect(error?.addressInUse).toEqual({ name: "legacy", host: "127.0.0.1", port })
  expect(describeFailure(exit.cause, {}).line).toBe(`cannot start: SIGNALING_PORT: port ${port} is already in use (on 127.0.0.1)`)
  expect(describeFailure(exit.cause, { RPC_SIGNALING_PORT: String(port) }).line).toContain("RPC_SIGNALING_PORT: port")
  expect(describeFailure(exit.cause, {}).detail).toBeUndefined()
})

test("a free port is taken as configured", async () => {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  const exit = await serve("l2ps", port)
  expect(exit).toEqual(Exit.succeed({ port, url: `ws://127.0.0.1:${port}` }))
})
