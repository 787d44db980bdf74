/**
 * Attacks on the client library against the node started as a user starts it, over real WebSockets
 * (SECURITY.md 15 and 18), some through a proxy that rewrites what the node answers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex } from "@noble/hashes/utils.js"
import { Effect, Exit, Scope } from "effect"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, type Identity, messageHashOf, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import type { ProofResponsePayload } from "../../src/client/Wire.ts"
import { canonicalJson, path as merklePath, root as merkleRoot } from "../../src/domain/Merkle.ts"
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

/** A WebSocket proxy to the node that passes every frame, and the node's frames through `rewrite`. */
const proxy = (rewrite: (frame: string) => string) => {
  // Binary frames (the messenger asks for them) pass as they are: only JSON text is rewritten.
  type Data = { up?: WebSocket; queue: Array<string | Uint8Array> }
  const server = Bun.serve<Data, never>({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => (srv.upgrade(req, { data: { queue: [] } }) ? undefined : new Response("websocket only", { status: 400 })),
    websocket: {
      open(ws) {
        const up = new WebSocket(node.url)
        ws.data.up = up
        up.onopen = () => {
          for (const m of ws.data.queue.splice(0)) up.send(m)
        }
        up.binaryType = "arraybuffer"
        up.onmessage = (e) => ws.send(typeof e.data === "string" ? rewrite(e.data) : new Uint8Array(e.data as ArrayBuffer))
        up.onclose = () => ws.close()
      },
      message(ws, msg) {
        const up = ws.data.up!
        const frame = typeof msg === "string" ? msg : new Uint8Array(msg)
        if (up.readyState === WebSocket.OPEN) up.send(frame)
        else ws.data.queue.push(frame)
      },
      close(ws) {
        ws.data.up?.close()
      }
    }
  })
  cleanup.push(() => server.stop(true))
  return `ws://127.0.0.1:${server.port}`
}

const headerHash = (b: NonNullable<ProofResponsePayload["batch"]>) =>
  bytesToHex(sha256(new TextEncoder().encode(canonicalJson({ l2psUid: b.l2psUid, seq: b.seq, root: b.root, size: b.size, prevBatchHash: b.prevBatchHash, createdAt: b.createdAt }))))

describe("15. inclusion proofs checked against the node key the client pinned", () => {
  test("the node signs what it proves; a root or a signer rewritten on the way is not taken for a proof", async () => {
    // What a lying node (or anyone between) answers: the message in a batch of its own making (with a
    // made-up neighbour), said confirmed in a block of its choosing; either kept under the node's
    // signature, or signed again with another ML-DSA key.
    const attacker = ml_dsa65.keygen(new Uint8Array(32).fill(7))
    let forge: "none" | "root" | "key" = "none"
    const url = proxy((text) => {
      const frame = JSON.parse(text) as { type: string; payload: ProofResponsePayload }
      if (frame.type !== "proof_response" || frame.payload.batch === null || forge === "none") return text
      const leaves = [frame.payload.leaf, "ab".repeat(32)]
      let batch = { ...frame.payload.batch, root: merkleRoot(leaves), size: 2, status: "confirmed", blockNumber: 424242 }
      if (forge === "key") {
        const batchHash = headerHash(batch)
        batch = { ...batch, batchHash, signature: bytesToHex(ml_dsa65.sign(Buffer.from(batchHash, "hex"), attacker.secretKey)), signer: bytesToHex(attacker.publicKey) }
      }
      return JSON.stringify({ ...frame, payload: { ...frame.payload, batch, path: merklePath(leaves, 0) } })
    })
    const bob = await messenger()
    const alice = await messenger({ serverUrl: url })
    const sent = await Effect.runPromise(alice.m.send(bob.key, "signed, sealed, delivered"))

    // the node's own answer, straight: the header, its signature and the node's key (additive fields)
    const direct = await sdkClient(bob.identity)
    let raw = await direct.proofRequest(sent.messageHash)
    for (let i = 0; i < 80 && raw.batch?.status !== "confirmed"; i++) {
      await Bun.sleep(100)
      raw = await direct.proofRequest(sent.messageHash)
    }
    const b = raw.batch!
    expect(b.status).toBe("confirmed")
    expect(b.signer).toMatch(/^[0-9a-f]{3904}$/)
    expect(b.signature).toMatch(/^[0-9a-f]+$/)
    expect(headerHash(b)).toBe(b.batchHash!)
    expect(ml_dsa65.verify(Buffer.from(b.signature!, "hex"), Buffer.from(b.batchHash!, "hex"), Buffer.from(b.signer!, "hex"))).toBe(true)

    // first use: the proof checks and pins the node's key
    await Effect.runPromise(alice.m.refresh(bob.key))
    const honest = await Effect.runPromise(alice.m.confirm(sent.messageHash))
    expect(honest).toMatchObject({ valid: true, confirmed: true, signer: b.signer })

    forge = "root"
    const rewritten = await Effect.runPromise(alice.m.confirm(sent.messageHash))
    expect(rewritten).toMatchObject({ valid: false, confirmed: false, reason: "the batch header does not hash to its batchHash" })

    forge = "key"
    const resigned = await Effect.runPromise(alice.m.confirm(sent.messageHash))
    expect(resigned).toMatchObject({ valid: false, confirmed: false, reason: "the batch is signed by another node key than the pinned one" })
    expect(resigned.signer).toBe(bytesToHex(attacker.publicKey))
    expect((await Effect.runPromise(alice.m.conversation(bob.key)))[0]!.proof).toMatchObject({ valid: false, signer: bytesToHex(attacker.publicKey) })

    // a key given by the app is required from the first proof on: no first use to take over
    const carol = await messenger({ serverUrl: url, nodeKey: b.signer! })
    const toBob = await Effect.runPromise(carol.m.send(bob.key, "hi"))
    forge = "none"
    let mine = await Effect.runPromise(carol.m.confirm(toBob.messageHash))
    for (let i = 0; i < 80 && !mine.confirmed; i++) {
      await Bun.sleep(100)
      mine = await Effect.runPromise(carol.m.confirm(toBob.messageHash))
    }
    expect(mine).toMatchObject({ valid: true, confirmed: true, signer: b.signer })
    forge = "key"
    expect(await Effect.runPromise(carol.m.confirm(toBob.messageHash))).toMatchObject({ valid: false, reason: "the batch is signed by another node key than the pinned one" })
  }, 40_000)
})
