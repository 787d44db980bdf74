/**
 * One conversation on each server, driven by client frames given as text (the document's examples, or
 * the generator's), against a node started in-process; every frame the node sends is recorded.
 */
import { Chunk, Effect, Layer, Queue, TestClock, TestContext, TestServices } from "effect"
import * as SqlClient from "@effect/sql/SqlClient"
import { MemoryTransport, type MemorySocket } from "../../src/transport/MemoryTransport.ts"
import { testNode } from "../support/TestNode.ts"
import { T0 } from "./ProtocolVectors.ts"

export interface Received {
  readonly server: "l2ps" | "legacy"
  readonly to: string
  readonly text: string
}

/** Client frames by example name: `l2ps/register-v1`, `legacy/message`, … */
export type ClientFrames = Readonly<Record<string, string>>

const live = <A, E, R>(e: Effect.Effect<A, E, R>) => TestServices.provideLive(e)

const config = {
  limits: { rateLimitBurst: 1000, rateLimitPerSec: 1000 },
  maxBatchSize: 500,
  batchIntervalMillis: 100,
  blockIntervalMillis: 1000,
  finalityDepth: 1
}

/** A test clock that starts at T0: moving one from 0 would run every timer of the node's loops through 56 years. */
const clockAtT0 = TestClock.live(TestClock.makeData(T0, Chunk.empty())).pipe(
  Layer.provide(Layer.merge(TestServices.liveLayer(), TestServices.annotationsLayer())),
  Layer.provide(TestContext.LiveContext)
)

export const runFlow = (frames: ClientFrames, legacyChallengeRegister: (nonce: string, node: string) => string) =>
  Effect.runPromise(flow(frames, legacyChallengeRegister).pipe(
    Effect.provide(testNode(config)),
    Effect.provide(clockAtT0),
    Effect.scoped,
    Effect.provide(TestContext.TestContext)
  ))

const flow = (frames: ClientFrames, legacyChallengeRegister: (nonce: string, node: string) => string) =>
  Effect.gen(function*() {
    const transport = yield* MemoryTransport
    const received: Array<Received> = []
    const sockets = new Map<string, { server: "l2ps" | "legacy"; socket: MemorySocket }>()
    const connect = (server: "l2ps" | "legacy", who: string) =>
      Effect.gen(function*() {
        const socket = server === "l2ps" ? yield* transport.connect() : yield* transport.connectTo("legacy")
        sockets.set(who, { server, socket })
      })
    const frame = (name: string) => {
      const text = frames[name]
      if (text === undefined) throw new Error(`no example ${name}`)
      return text
    }
    const send = (who: string, name: string) => sockets.get(who)!.socket.send(frame(name))
    /** The next frame `who` gets, which must be of `type`. */
    const expect = (who: string, type: string) =>
      Effect.gen(function*() {
        const { server, socket } = sockets.get(who)!
        const text = yield* live(Queue.take(socket.frames).pipe(
          Effect.timeoutFail({ duration: 3000, onTimeout: () => new Error(`${who}: no ${type} within 3 s`) }),
          Effect.orDie
        ))
        const got = JSON.parse(text) as { type: string }
        if (got.type !== type) return yield* Effect.die(new Error(`${who}: expected ${type}, got ${text.slice(0, 400)}`))
        received.push({ server, to: who, text })
        return got as { type: string; payload: any }
      })
    const quiet = (who: string) =>
      live(Queue.take(sockets.get(who)!.socket.frames).pipe(
        Effect.timeout(100),
        Effect.flatMap((t) => Effect.die(new Error(`${who}: unexpected frame ${t.slice(0, 400)}`))),
        Effect.catchTag("TimeoutException", () => Effect.void)
      ))

    // L2PS: alice (reference proofs), bob (bound proofs, acknowledges), carol (offline at first).
    yield* connect("l2ps", "alice")
    yield* connect("l2ps", "bob")
    yield* connect("l2ps", "carol")
    yield* send("alice", "l2ps/node_info")
    yield* expect("alice", "node_info_response")
    yield* send("alice", "l2ps/register-v1")
    yield* expect("alice", "registered")
    yield* send("bob", "l2ps/register-v2")
    yield* expect("bob", "registered")
    yield* expect("alice", "peer_joined")
    // Invites: alice stores a one-time record, bob fetches it once, then it is gone.
    yield* send("alice", "l2ps/invite_store")
    yield* expect("alice", "invite_stored")
    yield* send("bob", "l2ps/invite_fetch")
    yield* expect("bob", "invite_response")
    yield* send("bob", "l2ps/invite_fetch-again")
    yield* expect("bob", "error")
    yield* send("alice", "l2ps/invite_delete")
    yield* expect("alice", "invite_deleted")
    yield* send("alice", "l2ps/discover")
    yield* expect("alice", "discover_response")
    yield* send("alice", "l2ps/discover-page")
    yield* expect("alice", "discover_response")
    yield* send("alice", "l2ps/discover-cursor")
    yield* expect("alice", "discover_response")
    yield* send("alice", "l2ps/request_public_key")
    yield* expect("alice", "public_key_response")
    yield* send("alice", "l2ps/send")
    yield* expect("alice", "message_sent")
    const delivered = yield* expect("bob", "message")
    yield* send("bob", "l2ps/ack")
    const acked = yield* expect("bob", "ack_response")
    if (acked.payload.messageHashes.length !== 1) return yield* Effect.die(new Error("the example ack confirmed nothing"))
    yield* expect("alice", "message_delivered")
    yield* send("alice", "l2ps/send-offline")
    yield* expect("alice", "message_queued")
    yield* send("carol", "l2ps/register-carol")
    yield* expect("carol", "registered")
    const offline = yield* expect("carol", "message")
    if (offline.payload.offline !== true || delivered.payload.offline !== false) {
      return yield* Effect.die(new Error("the live message is not offline: false, or the queued one not offline: true"))
    }
    yield* expect("alice", "peer_joined")
    yield* expect("bob", "peer_joined")
    // bob's second device asks for copies of what his other sessions send (no presence: bob was online).
    yield* connect("l2ps", "bob2")
    yield* send("bob2", "l2ps/register-copies")
    yield* expect("bob2", "registered")
    yield* send("alice", "l2ps/history")
    yield* expect("alice", "history_response")
    yield* send("alice", "l2ps/proof_request")
    yield* expect("alice", "proof_response")
    yield* send("alice", "l2ps/send-self")
    yield* expect("alice", "error")
    // Prekeys: bob's device publishes, alice fetches its bundle (taking its one-time keys), bob counts what
    // is left, lists his devices, has a forged key refused and removes the device.
    yield* send("bob", "l2ps/prekeys_publish")
    yield* expect("bob", "prekeys_published")
    yield* send("alice", "l2ps/bundle_fetch")
    const bundle = yield* expect("alice", "bundle_response")
    if (bundle.payload.devices[0]?.oneTimeKem === undefined) return yield* Effect.die(new Error("the example bundle has no one-time ML-KEM key"))
    yield* send("bob", "l2ps/prekeys_count")
    yield* expect("bob", "prekeys_count_response")
    yield* send("bob", "l2ps/devices")
    yield* expect("bob", "devices_response")
    yield* send("bob", "l2ps/prekeys_publish-forged")
    yield* expect("bob", "error")
    yield* send("bob", "l2ps/device_remove")
    yield* expect("bob", "device_removed")
    // The batch closes, is anchored and confirmed.
    const sql = yield* SqlClient.SqlClient
    let confirmed = false
    for (let i = 0; i < 500 && !confirmed; i++) {
      yield* TestClock.adjust(500)
      yield* live(Effect.sleep(20))
      const [b] = yield* sql<{ status: string }>`SELECT status FROM l2ps_batches ORDER BY id LIMIT 1`
      confirmed = b?.status === "confirmed"
    }
    if (!confirmed) return yield* Effect.die(new Error("the example batch was not confirmed within 10 s"))
    yield* send("bob", "l2ps/proof_request-from")
    yield* expect("bob", "proof_response")
    // bob replies from his first session: alice gets the message, his second session a copy.
    yield* send("bob", "l2ps/send-reply")
    yield* expect("bob", "message_sent")
    const reply = yield* expect("alice", "message")
    const copy = yield* expect("bob2", "message")
    if (copy.payload.from !== reply.payload.from || typeof copy.payload.to !== "string" || "to" in reply.payload) {
      return yield* Effect.die(new Error("the copy is not a message of bob's own key with its recipient, or the delivery has a to"))
    }
    yield* quiet("bob")
    yield* sockets.get("carol")!.socket.close
    yield* expect("alice", "peer_left")

    // Legacy: alice (2.9.1 static proof), bob (challenge extension), carol (offline owner).
    yield* connect("legacy", "l-alice")
    yield* connect("legacy", "l-bob")
    yield* connect("legacy", "l-carol")
    yield* send("l-alice", "legacy/register")
    yield* expect("l-alice", "register")
    yield* send("l-bob", "legacy/challenge")
    const challenge = yield* expect("l-bob", "challenge")
    yield* sockets.get("l-bob")!.socket.send(legacyChallengeRegister(challenge.payload.nonce, challenge.payload.node))
    yield* expect("l-bob", "register")
    yield* send("l-carol", "legacy/register-carol")
    yield* expect("l-carol", "register")
    yield* sockets.get("l-carol")!.socket.close
    yield* expect("l-alice", "peer_disconnected")
    yield* expect("l-bob", "peer_disconnected")
    yield* send("l-alice", "legacy/discover")
    yield* expect("l-alice", "discover")
    yield* send("l-alice", "legacy/request_public_key")
    yield* expect("l-alice", "public_key_response")
    yield* send("l-alice", "legacy/message")
    yield* expect("l-bob", "message")
    yield* quiet("l-alice")
    yield* send("l-alice", "legacy/message-offline")
    yield* expect("l-alice", "message_queued")
    yield* connect("legacy", "l-carol2")
    yield* send("l-carol2", "legacy/register-carol")
    yield* expect("l-carol2", "register")
    yield* expect("l-carol2", "message")
    yield* send("l-alice", "legacy/debug_question")
    const question = yield* expect("l-alice", "server_question")
    yield* sockets.get("l-alice")!.socket.send(
      frame("legacy/peer_response").replace("00000000-0000-4000-8000-000000000000", question.payload.questionId)
    )
    yield* quiet("l-alice")
    yield* send("l-alice", "legacy/request_public_key-unknown")
    yield* expect("l-alice", "error")
    return received
  })
