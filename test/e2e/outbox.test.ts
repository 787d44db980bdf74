/**
 * The client outbox through a real node: a message typed while the node is down is kept, survives a
 * restart of the client, and reaches its recipient once, in order, when the node is back; the sender
 * then sees it delivered.
 */
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FolderStorage from "../../src/client/FolderStorage.ts"
import { generateIdentity, type Identity, openMessage, sealBound, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as L2psPeer from "../../src/client/L2psPeer.ts"
import * as MessageStore from "../../src/client/MessageStore.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import * as Outbox from "../../src/client/Outbox.ts"
import { freePort, type NodeProcess } from "../support/NodeProcess.ts"
import { startE2eNode, waitUntil } from "./helpers.ts"

const KEY = new Uint8Array(32).fill(3)
const dirs: Array<string> = []
let node: NodeProcess | undefined
afterAll(async () => {
  await node?.dispose()
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

const peerOf = (url: string, me: Identity) =>
  L2psPeer.make({
    serverUrl: url,
    publicKey: me.publicKey,
    l2psUid: "default",
    signFn: signFnOf(me),
    capabilities: ["ack"],
    reconnect: { baseDelayMillis: 50, maxDelayMillis: 200 },
    timeouts: { connect: 2_000, request: 2_000, send: 2_000 }
  })

/** A client: its history in `dir`, an L2PS session (not connected yet) and the outbox over both. */
const openClient = async (url: string, me: Identity, dir: string) => {
  const scope = Effect.runSync(Scope.make())
  const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(effect.pipe(Scope.extend(scope)))
  const store = await run(MessageStore.open(FolderStorage.make(dir), "history.log", KEY))
  const peer = await run(peerOf(url, me))
  const changes: Array<string> = []
  const outbox = await run(Outbox.make({
    store,
    retryMinMs: 20,
    retryMaxMs: 200,
    send: (r) => peer.send(r.peer, r.encrypted!, r.messageHash).pipe(
      Effect.map((result) => ("status" in result ? "queued" as const : "sent" as const)),
      Effect.mapError(Outbox.classify)
    ),
    onChange: (r) => Effect.sync(() => void changes.push(`${r.text}:${r.status}`))
  }))
  const events = await run(peer.subscribe)
  await run(Queue.take(events).pipe(
    Effect.flatMap((e) =>
      e._tag === "Delivered"
        ? store.update(e.receipt.messageHash, { status: "delivered" }).pipe(Effect.tap((r) => Effect.sync(() => void (r && changes.push(`${r.text}:delivered`)))), Effect.ignore)
        : e._tag === "Registered" ? outbox.kick : Effect.void),
    Effect.forever,
    Effect.forkScoped
  ))
  const type = (to: string, text: string) =>
    Effect.runPromise(Effect.gen(function*() {
      const at = Date.now()
      const { encrypted, messageHash } = sealBound(me, to, text, at)
      return yield* outbox.enqueue({ messageHash, peer: to, direction: "out", text, at, l2psUid: "default", status: "sending", encrypted })
    }))
  return { store, peer, outbox, changes, type, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

describe("client outbox through a real node", () => {
  test("node stopped, messages typed, client restarted, node started: delivered once each, in order", async () => {
    const port = freePort()
    const url = `ws://127.0.0.1:${port}`
    const alice = generateIdentity()
    const bob = generateIdentity()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "outbox-e2e-"))
    dirs.push(dir)

    const first = await openClient(url, alice, dir)
    for (const text of ["one", "two", "three"]) await first.type(bob.publicKey, text)
    expect((await Effect.runPromise(first.store.recent())).map((r) => `${r.text}:${r.status}`)).toEqual(["one:sending", "two:sending", "three:sending"])
    await first.close()

    await node?.dispose() // one node at a time: afterAll stops only the last
    node = await startE2eNode({ L2PS_MESSAGING_PORT: String(port) })
    expect(node.url).toBe(url)
    const again = await openClient(url, alice, dir)
    await Effect.runPromise(again.peer.connect)
    await waitUntil(() => again.changes.length >= 3, "the three sends", 15_000)
    expect(again.changes.slice(0, 3)).toEqual(["one:queued", "two:queued", "three:queued"])

    const received: Array<{ text: string; hash: string }> = []
    const scope = Effect.runSync(Scope.make())
    const bobPeer = await Effect.runPromise(peerOf(url, bob).pipe(Scope.extend(scope)))
    const bobEvents = await Effect.runPromise(bobPeer.subscribe.pipe(Scope.extend(scope)))
    await Effect.runPromise(Queue.take(bobEvents).pipe(
      Effect.flatMap((e) => {
        if (e._tag !== "Message") return Effect.void
        const opened = openMessage(bob, e.message.from, e.message.encrypted, e.message.messageHash)
        received.push({ text: opened._tag === "Replayed" ? "replayed" : opened.text, hash: e.message.messageHash })
        return bobPeer.ack([e.message.messageHash]).pipe(Effect.ignore)
      }),
      Effect.forever,
      Effect.forkScoped,
      Scope.extend(scope)
    ))
    await Effect.runPromise(bobPeer.connect)
    await waitUntil(() => received.length >= 3 && again.changes.length >= 6, "bob's three messages and their receipts", 15_000)
    // a moment for anything sent twice to show up
    await new Promise((r) => setTimeout(r, 300))
    expect(received.map((m) => m.text)).toEqual(["one", "two", "three"])
    expect(again.changes.slice(3).sort()).toEqual(["one:delivered", "three:delivered", "two:delivered"])
    expect((await Effect.runPromise(again.store.recent())).map((r) => `${r.text}:${r.status}`)).toEqual(["one:delivered", "two:delivered", "three:delivered"])
    expect(await Effect.runPromise(again.outbox.pending)).toEqual([])
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await again.close()
  }, 60_000)

  test("Messenger: sent while the node is down past the send timeout, not failed; the client restarted, it goes out once the node is up", async () => {
    const port = freePort()
    const url = `ws://127.0.0.1:${port}`
    const alice = generateIdentity()
    const bob = generateIdentity()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "outbox-messenger-"))
    dirs.push(dir)
    const options = { serverUrl: url, secure: false as const, timeouts: { send: 300, connect: 2_000 }, reconnect: { baseDelayMillis: 50, maxDelayMillis: 200 } }
    const aliceMessenger = async (scope: Scope.Scope) => {
      const store = await Effect.runPromise(MessageStore.open(FolderStorage.make(dir), "history.log", KEY))
      return Effect.runPromise(Messenger.make({ ...options, identity: alice, store }).pipe(Scope.extend(scope)))
    }

    const firstScope = Effect.runSync(Scope.make())
    const firstEvents: Array<string> = []
    const first = await aliceMessenger(firstScope)
    const sub = await Effect.runPromise(first.subscribe.pipe(Scope.extend(firstScope)))
    await Effect.runPromise(Queue.take(sub).pipe(Effect.tap((e) => Effect.sync(() => void firstEvents.push(e._tag))), Effect.forever, Effect.forkIn(firstScope)))
    const kept = await Effect.runPromise(first.send(bob.publicKey, "typed while the node was down"))
    expect(kept.status).toBe("sending")
    await new Promise((r) => setTimeout(r, 600))
    expect(firstEvents.filter((e) => e === "SendFailed" || e === "Sent")).toEqual([])
    await Effect.runPromise(Scope.close(firstScope, Exit.void))

    await node?.dispose() // one node at a time: afterAll stops only the last
    node = await startE2eNode({ L2PS_MESSAGING_PORT: String(port) })
    const scope = Effect.runSync(Scope.make())
    const again = await aliceMessenger(scope)
    const aliceEvents = await Effect.runPromise(again.subscribe.pipe(Scope.extend(scope)))
    const bobM = await Effect.runPromise(Messenger.make({ ...options, identity: bob }).pipe(Scope.extend(scope)))
    const bobEvents = await Effect.runPromise(bobM.subscribe.pipe(Scope.extend(scope)))
    await Effect.runPromise(again.connect)
    const sent = await Effect.runPromise(Queue.take(aliceEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Sent" })))
    expect(sent._tag === "Sent" && [sent.record.text, sent.record.status]).toEqual(["typed while the node was down", "queued"])
    await Effect.runPromise(bobM.connect)
    const got = await Effect.runPromise(Queue.take(bobEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Received" })))
    expect(got._tag === "Received" && got.record.text).toBe("typed while the node was down")
    const delivered = await Effect.runPromise(Queue.take(aliceEvents).pipe(Effect.repeat({ until: (e) => e._tag === "Delivered" })))
    expect(delivered._tag === "Delivered" && delivered.record.messageHash).toBe(kept.messageHash)
    await new Promise((r) => setTimeout(r, 300))
    expect((await Effect.runPromise(bobM.conversation(alice.publicKey))).map((r) => r.text)).toEqual(["typed while the node was down"])
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }, 60_000)
})
