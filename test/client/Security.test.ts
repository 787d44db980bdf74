/**
 * Attacks on the client library against the node started as a user starts it, over real WebSockets
 * (SECURITY.md 15 and 18).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Exit, Scope } from "effect"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, type Identity, messageHashOf, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import { type NodeProcess, startNode } from "../support/NodeProcess.ts"

let node: NodeProcess
const cleanup: Array<() => unknown> = []

const waitUntil = async (check: () => boolean, what: string, ms = 8000) => {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timeout after ${ms} ms waiting for ${what}`)
    await Bun.sleep(10)
  }
}

/** A Messenger in a scope closed at the end of the file, with every event it emitted. */
const messenger = async (config: Partial<Messenger.MessengerConfig> = {}) => {
  const events: Array<Messenger.ChatEvent> = []
  const scope = Effect.runSync(Scope.make())
  cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  const identity = config.identity ?? generateIdentity()
  const m = await Effect.runPromise(
    Scope.extend(Messenger.make({ serverUrl: node.url, identity, onEvent: (e) => void events.push(e), ...config }), scope)
  )
  await Effect.runPromise(m.connect)
  return { m, events, identity, key: identity.publicKey }
}

/** An SDK-style client (`L2PSMessagingPeer`) holding `identity`: it sends whatever ciphertext it is given. */
const sdkClient = async (identity: Identity) => {
  const client = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: identity.publicKey, l2psUid: "default", signFn: signFnOf(identity) })
  cleanup.push(() => client.dispose())
  await client.connect()
  return client
}

const received = (events: ReadonlyArray<Messenger.ChatEvent>) =>
  events.flatMap((e) => (e._tag === "Received" ? [e.record] : []))
const refused = (events: ReadonlyArray<Messenger.ChatEvent>) =>
  events.flatMap((e) => (e._tag === "Undecryptable" ? [e] : []))

beforeAll(async () => {
  node = await startNode({
    env: { ADMIN_PORT: "0", REGISTRATION_BURST_PER_ADDRESS: "100000", L2PS_BATCH_INTERVAL_MS: "100", L1_BLOCK_INTERVAL_MS: "100", L1_FINALITY_DEPTH: "1" },
    freePortEnv: ["SIGNALING_PORT"]
  })
}, 30_000)

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  await node?.dispose()
})

describe("18. ciphertexts bound to their message hash", () => {
  test("an old ciphertext of alice's sent again as a new message is refused as a replay, not shown", async () => {
    const bob = await messenger()
    const alice = await messenger()
    const sent = await Effect.runPromise(alice.m.send(bob.key, "pay carol 10"))
    await waitUntil(() => received(bob.events).length === 1, "bob's message")
    expect(received(bob.events)[0]).toMatchObject({ text: "pay carol 10", messageHash: sent.messageHash })
    expect(received(bob.events)[0]!.unbound).toBeUndefined()

    // Whoever can send as alice takes her old ciphertext and sends it under a fresh hash and time.
    await Effect.runPromise(alice.m.disconnect)
    const mallory = await sdkClient(alice.identity)
    const replayHash = messageHashOf(alice.key, bob.key, sent.encrypted!, sent.at + 60_000)
    await mallory.send(bob.key, sent.encrypted!, replayHash)
    await waitUntil(() => refused(bob.events).length === 1, "the replay refused")
    expect(refused(bob.events)[0]).toMatchObject({ from: alice.key, messageHash: replayHash, reason: expect.stringMatching(/replay/) })
    expect(received(bob.events)).toHaveLength(1)
    expect(await Effect.runPromise(bob.m.conversation(alice.key))).toMatchObject([
      { text: "pay carol 10", status: "received" },
      { messageHash: replayHash, text: "", status: "undecryptable" }
    ])
  }, 30_000)

  test("an SDK client's unbound message is shown marked unbound, or refused when bound ones are required", async () => {
    const bob = await messenger()
    const strict = await messenger({ requireBound: true })
    const sdkId = generateIdentity()
    const sdk = await sdkClient(sdkId)
    for (const to of [bob.key, strict.key]) {
      const encrypted = sealFor(sdkId, to, "from an older client")
      await sdk.send(to, encrypted, messageHashOf(sdkId.publicKey, to, encrypted, Date.now()))
    }
    await waitUntil(() => received(bob.events).length === 1 && refused(strict.events).length === 1, "both messages")
    expect(received(bob.events)[0]).toMatchObject({ text: "from an older client", unbound: true })
    expect(refused(strict.events)[0]!.reason).toMatch(/not bound/)
    expect(received(strict.events)).toHaveLength(0)
  }, 30_000)
})
