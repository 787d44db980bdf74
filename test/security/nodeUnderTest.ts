/**
 * One node started as a user starts it for a `describe` block, with the sockets its tests open closed
 * after each test: the set-up the real-socket security tests share.
 */
import { afterAll, afterEach, beforeAll, expect } from "bun:test"
import { ask, type Identity, makeIdentity, newRequestId, registerFrame, startE2eNode } from "../e2e/helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import * as RawSocket from "../support/RawSocket.ts"

export const nodeUnderTest = (env: Record<string, string>, uid = "default") => {
  let node: NodeProcess | undefined
  const open: Array<RawSocket.RawSocket> = []
  beforeAll(async () => {
    node = await startE2eNode(env, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => (s.isClosed ? s.closed : s.close())))
  })
  afterAll(async () => {
    await node?.dispose()
  })
  /** A socket registered as `id` in `uid`, closed after the test. */
  const registered = async (id: Identity = makeIdentity(), capabilities?: ReadonlyArray<string>) => {
    const s = await RawSocket.open(node!.url)
    open.push(s)
    const requestId = newRequestId()
    const reply = await ask(s, registerFrame(id, uid, capabilities === undefined ? { requestId } : { requestId, capabilities }))
    expect(reply).toMatchObject({ type: "registered", requestId })
    return { s, id, key: id.publicKey }
  }
  return { registered }
}
