/**
 * The cluster router of two nodes on one in-process bus (NATS rules, every subscriber served, the
 * publisher's own subscriptions included, as NATS does): what a node does with a push it receives,
 * what it ignores, and when it reads storage again. The real bus and nodes: test/cluster/.
 */
import { expect, test } from "bun:test"
import { Deferred, Effect, Fiber, Layer, Scope, SubscriptionRef } from "effect"
import * as Exit from "effect/Exit"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as ClusterRouter from "../../src/relay/ClusterRouter.ts"
import { type Peer, Peers } from "../../src/relay/Peers.ts"
import * as PeersLayer from "../../src/relay/Peers.ts"
import { Storage, type StorageShape } from "../../src/storage/Storage.ts"
import { Broker, type BrokerState, makeRegistry } from "../../src/transport/Broker.ts"

const KEY = "ab".repeat(32)

interface Calls {
  readonly handed: Array<{ ids: ReadonlyArray<string>; awaitingAck: boolean }>
  readonly requeued: Array<ReadonlyArray<string>>
  readonly probed: Array<ReadonlyArray<string>>
}

const recordingStorage = (calls: Calls, waitingKeys: Set<string>) =>
  Layer.succeed(Storage, {
    markHanded: (ids, awaitingAck) => Effect.sync(() => void (ids.length > 0 && calls.handed.push({ ids, awaitingAck }))),
    requeue: (ids) => Effect.sync(() => void calls.requeued.push(ids)),
    waiting: (recipients) =>
      Effect.sync(() => {
        calls.probed.push(recipients.map((r) => r.to))
        return recipients.map((r) => waitingKeys.has(r.to))
      })
  } as Partial<StorageShape> as StorageShape)

interface FakePeer extends Peer {
  readonly pushed: Array<{ text: string; messageId?: string }>
  readonly handedHashes: Array<string>
  flushes: number
}

let nextId = 1
const fakePeer = (key: string, opts: { ackCapable?: boolean; copies?: boolean; receipts?: boolean; room?: boolean; accepts?: boolean } = {}): FakePeer => {
  const p: FakePeer = {
    id: nextId++,
    key,
    l2psUid: "default",
    ackCapable: opts.ackCapable ?? false,
    copies: opts.copies ?? false,
    receipts: opts.receipts ?? false,
    canAccept: () => opts.room ?? true,
    pushed: [],
    handedHashes: [],
    flushes: 0,
    handed: (h) => void p.handedHashes.push(h),
    push: (text, messageId) => {
      if (opts.accepts === false) return false
      p.pushed.push({ text, ...(messageId === undefined ? {} : { messageId }) })
      return true
    },
    requestFlush: () => void p.flushes++,
    close: () => {},
    subscribe: () => {},
    unsubscribe: () => {},
    publish: () => {}
  }
  return p
}

/** Two nodes' routers on one bus; `run` gets each node's router and peers. */
const twoNodes = <A>(
  run: (nodes: ReadonlyArray<{ router: typeof ClusterRouter.ClusterRouter.Service; peers: typeof Peers.Service }>, bus: {
    raw: (subject: string, text: string) => void
    subjects: () => Array<string>
    state: SubscriptionRef.SubscriptionRef<BrokerState>
  }) => Effect.Effect<A>,
  calls: Calls,
  waitingKeys: Set<string> = new Set(),
  resyncMillis = 60_000,
  flush: Effect.Effect<void> = Effect.void
) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const registry = makeRegistry({ onFirst: () => {}, onLast: () => {} })
    const state = yield* SubscriptionRef.make<BrokerState>("connected")
    const broker = Layer.succeed(Broker, {
      kind: "nats",
      publish: (subject, data) => Effect.sync(() => registry.deliverLocal(subject, data)),
      subscribe: registry.add,
      flush,
      state: SubscriptionRef.get(state),
      states: state.changes,
      reconnects: Effect.succeed(0)
    })
    const node = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(
        ClusterRouter.layer.pipe(
          Layer.provideMerge(PeersLayer.layer),
          Layer.provide(Layer.mergeAll(broker, recordingStorage(calls, waitingKeys), NodeConfig.layer({ clusterResyncMillis: resyncMillis })))
        ),
        scope
      )
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      return { router: ctx.unsafeMap.get(ClusterRouter.ClusterRouter.key), peers: ctx.unsafeMap.get(Peers.key) }
    })
    const nodes = [yield* node, yield* node]
    const enc = new TextEncoder()
    return yield* run(nodes, {
      raw: (subject, text) => registry.deliverLocal(subject, enc.encode(text)),
      subjects: () => [...registry.subjects()],
      state
    })
  })))

const emptyCalls = (): Calls => ({ handed: [], requeued: [], probed: [] })
const settle = Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
const join = (n: { router: typeof ClusterRouter.ClusterRouter.Service; peers: typeof Peers.Service }, p: Peer) =>
  Effect.zipRight(n.peers.add(p, 10), n.router.track(p.l2psUid, p.key))

test("a message stored on one node reaches the key's sessions on the other, marked handed over first; never twice on the publisher", async () => {
  const calls = emptyCalls()
  const onA = fakePeer(KEY, { ackCapable: true })
  const onB = fakePeer(KEY, { ackCapable: true })
  await twoNodes(([a, b]) =>
    Effect.gen(function*() {
      yield* join(a!, onA)
      yield* join(b!, onB)
      a!.router.unsafeStored("default", KEY, "42", "hash\nwith a newline", "{\"type\":\"message\"}")
      yield* settle
    }), calls)
  expect(onB.pushed).toEqual([{ text: "{\"type\":\"message\"}" }])
  expect(onB.handedHashes).toEqual(["hash\nwith a newline"])
  // The publisher's own session was served by the send itself: the bus's echo is not a second push.
  expect(onA.pushed).toEqual([])
  expect(calls.handed).toEqual([{ ids: ["42"], awaitingAck: true }])
})

test("a session that does not acknowledge gets the message with its id (requeued if never written); no room: its session catches up from storage", async () => {
  const calls = emptyCalls()
  const plain = fakePeer(KEY)
  const full = fakePeer("cd".repeat(32), { room: false })
  const refusing = fakePeer("ef".repeat(32), { accepts: false })
  await twoNodes(([a, b]) =>
    Effect.gen(function*() {
      for (const p of [plain, full, refusing]) yield* join(b!, p)
      a!.router.unsafeStored("default", plain.key, "1", "h1", "m1")
      a!.router.unsafeStored("default", full.key, "2", "h2", "m2")
      a!.router.unsafeStored("default", refusing.key, "3", "h3", "m3")
      yield* settle
    }), calls)
  expect(plain.pushed).toEqual([{ text: "m1", messageId: "1" }])
  expect(full.pushed).toEqual([])
  expect(full.flushes).toBe(1)
  expect(calls.handed).toEqual([{ ids: ["1", "3"], awaitingAck: false }])
  // Marked, then no session took it: back to the queue, and the session reads it from there.
  expect(calls.requeued).toEqual([["3"]])
  expect(refusing.flushes).toBeGreaterThanOrEqual(1)
})

test("receipts reach every session of the sender's key, copies only those that asked; malformed bus data is ignored", async () => {
  const calls = emptyCalls()
  const asked = fakePeer(KEY, { copies: true, receipts: true })
  const notAsked = fakePeer(KEY)
  await twoNodes(([a, b], bus) =>
    Effect.gen(function*() {
      yield* join(b!, asked)
      yield* join(b!, notAsked)
      const subject = ClusterRouter.subjectOf("default", KEY)
      for (const junk of ["", "m", "x\nother\n1\n\"h\"\nframe", "m\nother\nnot-a-number\n\"h\"\nframe", "m\nother\n1\nnot json\nframe"]) {
        bus.raw(subject, junk)
      }
      a!.router.unsafeReceipt("default", KEY, "h1", 5, true, undefined)
      a!.router.unsafeReceipt("default", KEY, "h2", 6, true, "c2VhbGVk")
      // Confirmed before by another device: only the sessions that read receipts get it.
      a!.router.unsafeReceipt("default", KEY, "h3", 7, false, "YWdhaW4=")
      a!.router.unsafeCopy("default", KEY, "copy")
      yield* settle
    }), calls)
  const delivered = (hash: string, at: number, receipt?: string) =>
    JSON.stringify({ type: "message_delivered", payload: { messageHash: hash, at, ...(receipt === undefined ? {} : { receipt }) }, timestamp: at })
  expect(asked.pushed.map((p) => p.text)).toEqual([delivered("h1", 5), delivered("h2", 6, "c2VhbGVk"), delivered("h3", 7, "YWdhaW4="), "copy"])
  expect(notAsked.pushed.map((p) => p.text)).toEqual([delivered("h1", 5), delivered("h2", 6)])
  expect(calls.handed).toEqual([])
})

test("the key's subject is held while it has a session on the node, and dropped with its last", async () => {
  const calls = emptyCalls()
  const first = fakePeer(KEY)
  const second = fakePeer(KEY)
  const subjects = await twoNodes(([, b], bus) =>
    Effect.gen(function*() {
      const seen: Array<Array<string>> = []
      yield* join(b!, first)
      yield* join(b!, second)
      seen.push(bus.subjects())
      yield* b!.peers.remove(first)
      yield* b!.router.track("default", KEY)
      seen.push(bus.subjects())
      yield* b!.peers.remove(second)
      yield* b!.router.track("default", KEY)
      seen.push(bus.subjects())
      return seen
    }), calls)
  const subject = ClusterRouter.subjectOf("default", KEY)
  expect(subjects).toEqual([[subject], [subject], []])
})

test("storage is read again for the local keys on the period and at once when the bus comes back", async () => {
  const calls = emptyCalls()
  const waiting = fakePeer(KEY)
  const idle = fakePeer("cd".repeat(32))
  // A long period: the only read after the reconnect is the reconnect's.
  await twoNodes(([, b], bus) =>
    Effect.gen(function*() {
      yield* join(b!, waiting)
      yield* join(b!, idle)
      yield* settle
      const before = calls.probed.length
      const flushes = waiting.flushes
      yield* SubscriptionRef.set(bus.state, "disconnected")
      yield* SubscriptionRef.set(bus.state, "connected")
      yield* settle
      expect(calls.probed.length).toBe(before + 1)
      expect([...calls.probed.at(-1)!].sort()).toEqual([KEY, "cd".repeat(32)].sort())
      expect(waiting.flushes).toBe(flushes + 1)
    }), calls, new Set([KEY]))
  expect(idle.flushes).toBe(0)

  const periodic = emptyCalls()
  const p = fakePeer(KEY)
  await twoNodes(([, b]) =>
    Effect.gen(function*() {
      yield* join(b!, p)
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 200)))
    }), periodic, new Set([KEY]), 20)
  expect(p.flushes).toBeGreaterThanOrEqual(3)
})

test("a key's sessions wait for the bus to confirm its subscription: the first one's and those arriving meanwhile", async () => {
  const confirmed = Effect.runSync(Deferred.make<void>())
  let flushes = 0
  const flush = Effect.zipRight(Effect.sync(() => flushes++), Deferred.await(confirmed))
  const events: Array<string> = []
  await twoNodes(([, b], bus) =>
    Effect.gen(function*() {
      const first = yield* Effect.fork(Effect.zipRight(join(b!, fakePeer(KEY)), Effect.sync(() => events.push("first tracked"))))
      yield* settle
      // The SUB is asked for at once; only the storage read waits.
      expect(bus.subjects()).toEqual([`im.default.${KEY}`])
      const second = yield* Effect.fork(Effect.zipRight(join(b!, fakePeer(KEY)), Effect.sync(() => events.push("second tracked"))))
      yield* settle
      expect(events).toEqual([])
      events.push("confirmed")
      yield* Deferred.succeed(confirmed, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
    }), emptyCalls(), new Set(), 60_000, flush)
  expect(events.slice(0, 1)).toEqual(["confirmed"])
  expect(events.slice(1).sort()).toEqual(["first tracked", "second tracked"])
  // One round trip for the key: a second session does not ask for another.
  expect(flushes).toBe(1)
})
