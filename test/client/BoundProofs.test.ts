/**
 * Finding 6 of the security review, the client's side: against a node started with
 * REQUIRE_BOUND_PROOFS=true over real sockets, our clients sign proofs bound to the node and network
 * (learning the node's id with `node_info`), while a client signing the reference's proofs is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import { startE2eNode } from "../e2e/helpers.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"

const T = 30_000
let node: NodeProcess
const open: Array<L2PSMessagingPeer> = []

const client = (options: { boundProofs?: boolean; nodeId?: string } = {}) => {
  const id = generateIdentity()
  const c = new L2PSMessagingPeer({
    serverUrl: node.url,
    publicKey: id.publicKey,
    l2psUid: "default",
    signFn: signFnOf(id),
    reconnect: { maxAttempts: 0 },
    ...options
  })
  open.push(c)
  return Object.assign(c, { key: id.publicKey })
}

const failure = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => String((e as { message?: string }).message ?? e))

describe("bound proofs over real sockets (security finding 6)", () => {
  beforeAll(async () => {
    node = await startE2eNode({ REQUIRE_BOUND_PROOFS: "true" }, { readyTimeoutMs: 90_000 })
  }, 100_000)
  afterAll(async () => {
    await Promise.all(open.map((c) => c.dispose()))
    await node?.dispose()
  })

  test("our clients register and read history with bound proofs; the reference's proofs are refused", async () => {
    const bound = client({ boundProofs: true })
    expect((await bound.connect()).success).toBe(true)
    const other = generateIdentity().publicKey
    expect((await bound.history(other)).messages).toEqual([])

    // The Effect API our chat uses binds its proofs by default.
    const me = generateIdentity()
    const peers = await Effect.gen(function*() {
      const m = yield* Messenger.make({ serverUrl: node.url, identity: me, reconnect: { maxAttempts: 0 } })
      yield* m.connect
      yield* m.refresh(other)
      return yield* m.onlinePeers
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(peers).toContain(bound.key)

    // The SDK's proof string (the class's default, as the published client signs it) is refused here.
    expect(await failure(client().connect())).toContain("requires bound proofs")
    // Pinned to another node's id: refused too.
    expect(await failure(client({ nodeId: "ab".repeat(32) }).connect())).toContain("Signature verification failed")
  }, T)
})
