/**
 * Finding 5 of the security review over real sockets: a registered socket sending a storm of sends
 * past its key's rate limit was never closed (its sends skipped the frame budget) and cost everyone
 * else the node's time. Its refusals now count against the frame budget and the socket is closed
 * (1008) once they outrun it; a victim's sends meanwhile go through.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { randomHash } from "../support/L2psClient.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"
import { ask, encrypted, makeIdentity, registerRaw, requestFrame, startE2eNode } from "../e2e/helpers.ts"

const UID = "default"
const send = (to: string) => requestFrame("send", { to, encrypted: encrypted(), messageHash: randomHash() })

describe("a storm of refused sends over real sockets (security finding 5)", () => {
  let node: NodeProcess
  const open: Array<RawSocket.RawSocket> = []
  const registered = async () => {
    const s = await RawSocket.open(node.url)
    open.push(s)
    const id = makeIdentity()
    await registerRaw(s, id, UID)
    return { s, key: id.publicKey }
  }

  beforeAll(async () => {
    node = await startE2eNode({ L2PS_BATCH_INTERVAL_MS: "600000" }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await Promise.all(open.map((s) => (s.isClosed ? s.closed : s.close())))
    await node?.dispose()
  })

  test("the flooding socket is closed with 1008; the victim's sends are answered meanwhile", async () => {
    const attacker = await registered()
    const victim = await registered()
    const target = await registered()
    // 2,000 sends at once: the key's burst (40) is accepted, the rest refused and charged to the budget (200).
    for (let i = 0; i < 2000; i++) attacker.s.sendJson(send(target.key))
    const victimReply = await ask(victim.s, send(target.key), 10_000)
    expect(victimReply.type).toBe("message_sent")
    const closed = await Promise.race([attacker.s.closed, Bun.sleep(10_000).then(() => undefined)])
    // Refusals charged to the budget close it; on a loaded machine the inbox may fill first, which closes
    // it as well.
    expect(closed?.code).toBe(1008)
    expect(["Too many refused frames", "Too many frames in flight"]).toContain(String(closed?.reason))
    const refused = attacker.s.received.filter((f) => f.raw.includes('"RATE_LIMITED"')).length
    expect(refused).toBeLessThan(400)
    expect((await ask(victim.s, send(target.key))).type).toBe("message_sent")
  }, 40_000)
})
