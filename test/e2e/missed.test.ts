/**
 * Missed-message detection through a real node: a message deleted from the node's storage while its
 * recipient is offline is reported as exactly one missed message, from what the two messages around
 * it carry inside their ciphertexts (position and link, docs/PROTOCOL.md "Missed messages").
 */
import { PGlite } from "@electric-sql/pglite"
import { afterAll, describe, expect, test } from "bun:test"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as path from "node:path"
import * as Content from "../../src/client/content/Content.ts"
import * as ContentType from "../../src/client/content/ContentType.ts"
import * as MissedTracker from "../../src/client/content/MissedTracker.ts"
import { generateIdentity, type Identity, openMessage, sealBound, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as L2psPeer from "../../src/client/L2psPeer.ts"
import { fromBase64, toBase64 } from "../../src/client/MlKemAes.ts"
import type { NodeProcess } from "../support/NodeProcess.ts"
import { startE2eNode, waitUntil } from "./helpers.ts"

let node: NodeProcess | undefined
afterAll(() => node?.dispose())

const peerOf = (url: string, me: Identity) =>
  L2psPeer.make({
    serverUrl: url,
    publicKey: me.publicKey,
    l2psUid: "default",
    signFn: signFnOf(me),
    capabilities: ["ack"],
    reconnect: { baseDelayMillis: 50, maxDelayMillis: 200 }
  })

describe("missed messages through a real node", () => {
  test("a message deleted from the node's storage while its recipient is offline is reported as exactly one missed message", async () => {
    node = await startE2eNode()
    const alice = generateIdentity()
    const bob = generateIdentity()
    const registry = Content.make()
    const scope = Effect.runSync(Scope.make())
    const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(effect.pipe(Scope.extend(scope)))

    // Today's sealed scheme carries the envelope (base64) in place of the secure session's ciphertext.
    const sent: Array<string> = []
    const alicePeer = await run(peerOf(node.url, alice))
    await run(alicePeer.connect)
    let previous = Content.NO_PREVIOUS
    for (const [i, text] of ["one", "two", "three"].entries()) {
      const envelope = registry.encode(ContentType.text, { text }, { position: i + 1, previous })
      previous = Content.digest(envelope)
      const { encrypted, messageHash } = sealBound(alice, bob.publicKey, toBase64(envelope), Date.now())
      const result = await run(alicePeer.send(bob.publicKey, encrypted, messageHash))
      expect("status" in result && result.status).toBe("queued")
      sent.push(messageHash)
    }
    await Effect.runPromise(Scope.close(scope, Exit.void))

    await node.stop()
    const db = new PGlite(path.join(node.dataDir, "pglite"))
    const deleted = await db.query("DELETE FROM l2ps_messages WHERE message_hash = $1", [sent[1]])
    expect(deleted.affectedRows).toBe(1)
    await db.close()
    node = await node.restart()

    const tracker = MissedTracker.make({ graceMs: 200 })
    const events: Array<MissedTracker.Event> = []
    const texts: Array<string> = []
    const bobScope = Effect.runSync(Scope.make())
    const bobRun = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(effect.pipe(Scope.extend(bobScope)))
    const bobPeer = await bobRun(peerOf(node.url, bob))
    const bobEvents = await bobRun(bobPeer.subscribe)
    await bobRun(Queue.take(bobEvents).pipe(
      Effect.flatMap((e) => {
        if (e._tag !== "Message") return Effect.void
        const opened = openMessage(bob, e.message.from, e.message.encrypted, e.message.messageHash)
        if (opened._tag === "Replayed") return Effect.void
        const decoded = registry.decode(fromBase64(opened.text))
        if (Content.is(decoded, ContentType.text)) texts.push(decoded.body.text)
        events.push(...tracker.observe(e.message.from, 1, decoded.link!, decoded.digest, Date.now()))
        return bobPeer.ack([e.message.messageHash]).pipe(Effect.ignore)
      }),
      Effect.forever,
      Effect.forkScoped
    ))
    await bobRun(bobPeer.connect)
    await waitUntil(() => texts.length >= 2, "bob's two messages", 15_000)
    await new Promise((r) => setTimeout(r, 400))
    events.push(...tracker.settle(Date.now()))
    expect(texts).toEqual(["one", "three"])
    expect(events).toEqual([{ _tag: "Missed", peer: alice.publicKey, device: 1, count: 1 }])
    await Effect.runPromise(Scope.close(bobScope, Exit.void))
  }, 60_000)
})
