/**
 * The per-connection frame budget is the operator's to raise (`CONNECTION_FRAME_RATE` /
 * `CONNECTION_FRAME_BURST`): the real `MessagingPeer` 2.9.1 sends two frames per message
 * (`request_public_key`, then `message`), so one sending as fast as it can outruns the default budget
 * even where every per-key limit was raised.
 */
import { afterEach, describe, expect, test } from "bun:test"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"
import { ensureSdk, SdkClient, type SdkEvent } from "./SdkClient.ts"

const TIMEOUT = 120_000
const COUNT = 1000
const LEGACY_URL = /legacy ws:\/\/([^\s:,"]+):(\d+)/

/** Every per-key limit raised well past 1,000 messages in a few seconds. */
const RAISED_PER_KEY = {
  RATE_LIMIT_PER_SEC: "100000",
  RATE_LIMIT_BURST: "100000",
  EPOCH_QUOTA: "1000000",
  READ_BURST_PER_KEY: "1000000",
  READ_RATE_PER_KEY: "1000000",
  READ_BURST_PER_ADDRESS: "1000000",
  READ_RATE_PER_ADDRESS: "1000000"
}

const isMessage = (e: SdkEvent): e is Extract<SdkEvent, { event: "message" }> => e.event === "message"

let node: NodeProcess | undefined
const clients: Array<SdkClient> = []

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close()
  await node?.dispose()
  node = undefined
})

/** A node with `env`, and two registered 2.9.1 clients on its legacy server. */
const setUp = async (env: Record<string, string>) => {
  ensureSdk()
  node = await startNode({ freePortEnv: ["SIGNALING_PORT"], env })
  const m = node.output().map((l) => LEGACY_URL.exec(l)).find((x) => x !== null)
  if (!m) throw new Error(`no legacy URL in the node's output:\n${node.outputText()}`)
  const url = `ws://${m[1] === "0.0.0.0" || m[1] === "::" ? "127.0.0.1" : m[1]}:${m[2]}`
  for (const id of ["sender", "receiver"]) {
    const c = await SdkClient.create(url, id)
    await c.call("connect")
    clients.push(c)
  }
  return { sender: clients[0]!, receiver: clients[1]! }
}

describe("the connection frame budget and MessagingPeer 2.9.1 (@kynesyslabs/demosdk) sending back to back", () => {
  test(`raised by the operator: ${COUNT} messages sent back to back all arrive, in order`, async () => {
    const { sender, receiver } = await setUp({
      ...RAISED_PER_KEY,
      CONNECTION_FRAME_RATE: "100000",
      CONNECTION_FRAME_BURST: "100000"
    })
    expect(await sender.call("sendMany", "receiver", "m", COUNT)).toEqual({ sent: COUNT })
    await receiver.waitFor(isMessage, 60_000, 0)
    const until = performance.now() + 60_000
    while (receiver.events.filter(isMessage).length < COUNT && performance.now() < until) await Bun.sleep(50)
    const texts = receiver.events.filter(isMessage).map((e) => new TextDecoder().decode(new Uint8Array(e.bytes)))
    expect(texts).toEqual(Array.from({ length: COUNT }, (_, i) => `m${i}`))
    expect(sender.frames("error")).toEqual([])
  }, TIMEOUT)

  test("the default budget (100/s, burst 200), per-key limits raised alike: refused RATE_LIMITED \"Too many frames\"", async () => {
    const { sender } = await setUp(RAISED_PER_KEY)
    const result = await sender.call("sendMany", "receiver", "m", COUNT)
    expect(result.sent).toBeLessThan(COUNT)
    expect(result.error).toBe("Too many frames")
    expect(sender.frames("error").map((f) => f.payload.errorType)).toContain("RATE_LIMITED")
  }, TIMEOUT)
})
