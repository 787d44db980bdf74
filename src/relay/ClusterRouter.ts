import * as Context from "effect/Context"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Metrics from "../internal/Metrics.ts"
import { supervise } from "../internal/supervise.ts"
import { Storage } from "../storage/Storage.ts"
import { Broker, type BrokerShape } from "../transport/Broker.ts"
import { BatchQueue } from "./BatchQueue.ts"
import { deliveredFrame } from "./DeliveredFrame.ts"
import { type Peer, Peers } from "./Peers.ts"

/**
 * The delivery half of send, ack and register across the nodes of a cluster. Each key with a session
 * on this node has one subscription, `im.<l2psUid>.<key>` (both are subject tokens: network uids are
 * `[A-Za-z0-9_-]`, keys lower-case hex). After its commit a message's frame is published there, and a
 * receipt or a copy on its sender's subject; the nodes holding sessions of that key write it to them.
 * The bus may lose any of it: what is stored is read again, on a reconnect and every
 * `clusterResyncMillis`, for every local key. On one node (memory bus, or none) every call is a no-op.
 */
export class ClusterRouter extends Context.Tag("im/ClusterRouter")<ClusterRouter, {
  /** Whether this node is a cluster member (its bus is NATS). */
  readonly clustered: boolean
  /**
   * Subscribes to the key's subject while it has local sessions, and drops the subscription once it
   * has none; called after every change to the key's sessions (idempotent). Run before a registration
   * reads storage, so that a message is either stored by then or pushed after: it returns once the bus
   * has the subscription (for every session of the key, not only the one that opened it), or after the
   * broker's bounded wait when the bus does not answer (the resync covers that case).
   */
  readonly track: (l2psUid: string, key: string) => Effect.Effect<void>
  /** A committed message for `to`, its `message` frame as pushed live (plain code, after the sender's reply). */
  readonly unsafeStored: (l2psUid: string, to: string, id: string, messageHash: string, frame: string) => void
  /** A copy of what `from` sent, for its sessions on other nodes that asked for copies. */
  readonly unsafeCopy: (l2psUid: string, from: string, frame: string) => void
  /**
   * A confirmation for the sender's sessions on other nodes: `message_delivered` when `fresh` (the first
   * ack of the message), with the sealed `receipt` for the sessions that asked for receipts.
   */
  readonly unsafeReceipt: (l2psUid: string, from: string, messageHash: string, at: number, fresh: boolean, receipt: string | undefined) => void
}>() {}

/** Bus messages waiting for the delivery fiber; past it a push is dropped (the resync delivers it). */
const INBOUND_MAX = 8192
/** Publications waiting for the bus's client; past it one is dropped (the resync delivers it). */
const OUTBOUND_MAX = 8192
/** Bytes of frames each queue holds at most: 8,192 frames of the largest size would be 2 GB. */
const QUEUE_BYTES = 64 * 1024 * 1024
/** Bus messages handled in one turn (one storage update for all their messages). */
const INBOUND_BATCH = 512
/** Keys whose storage is probed in one resync round; the next round goes on from there. */
const RESYNC_KEYS = 1000

export const subjectOf = (l2psUid: string, key: string) => `im.${l2psUid}.${key}`

const enum Kind {
  Message = "m",
  Copy = "c",
  /** `message_delivered` as a frame; `id` is `at.receipt` when a sealed receipt goes with it, else empty. */
  Receipt = "r",
  /** Only a sealed receipt (`id` as for Receipt, no frame): the message was confirmed before. */
  Sealed = "s"
}

interface Inbound {
  readonly l2psUid: string
  readonly key: string
  readonly kind: Kind
  readonly id: string
  readonly messageHash: string
  readonly frame: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * `kind \n origin \n id \n hash-as-JSON \n frame`: the frame travels as it is written to sockets, without a
 * second escape (a hash may hold any character but NUL, so it is written as a JSON string).
 */
const encode = (kind: Kind, origin: string, id: string, messageHash: string, frame: string) =>
  encoder.encode(`${kind}\n${origin}\n${id}\n${JSON.stringify(messageHash)}\n${frame}`)

const decode = (origin: string, l2psUid: string, key: string, data: Uint8Array): Inbound | undefined => {
  const text = decoder.decode(data)
  const a = text.indexOf("\n")
  const b = text.indexOf("\n", a + 1)
  const c = text.indexOf("\n", b + 1)
  const d = text.indexOf("\n", c + 1)
  if (a !== 1 || b < 0 || c < 0 || d < 0) return undefined
  // This node's own publications: its local sessions were served before it published.
  if (text.slice(a + 1, b) === origin) return undefined
  const kind = text[0] as Kind
  if (kind !== Kind.Message && kind !== Kind.Copy && kind !== Kind.Receipt && kind !== Kind.Sealed) return undefined
  let messageHash: unknown
  try {
    messageHash = JSON.parse(text.slice(c + 1, d))
  } catch {
    return undefined
  }
  const id = text.slice(b + 1, c)
  if (typeof messageHash !== "string" || (kind === Kind.Message && !/^[0-9]{1,19}$/.test(id))) return undefined
  return { l2psUid, key, kind, id, messageHash, frame: text.slice(d + 1) }
}

const single = ClusterRouter.of({
  clustered: false,
  track: () => Effect.void,
  unsafeStored: () => {},
  unsafeCopy: () => {},
  unsafeReceipt: () => {}
})

const idOf = (l2psUid: string, key: string) => `${l2psUid}\u0000${key}`

const make = (broker: BrokerShape) =>
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const peers = yield* Peers
    const storage = yield* Storage
    const origin = `${(yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)}${(yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)}`
    const subscriptions = new Map<string, {
      readonly l2psUid: string
      readonly key: string
      readonly scope: Scope.CloseableScope
      /** Done once the bus confirmed the subscription (or gave up waiting). */
      readonly ready: Deferred.Deferred<void>
    }>()
    const inbound = new BatchQueue<Inbound>(INBOUND_MAX, QUEUE_BYTES, (item) => item.frame.length)
    let dropped = 0

    yield* Effect.addFinalizer(() =>
      Effect.forEach(subscriptions.values(), (s) => Scope.close(s.scope, Exit.void), { discard: true }).pipe(
        Effect.zipRight(Effect.sync(() => subscriptions.clear()))
      )
    )

    const track = (l2psUid: string, key: string) =>
      Effect.suspend(() => {
        const id = idOf(l2psUid, key)
        const local = peers.unsafeOnline(l2psUid, key).length > 0
        const sub = subscriptions.get(id)
        if (local && sub === undefined) {
          return Effect.flatMap(Scope.make(), (scope) => {
            const ready = Deferred.unsafeMake<void>(FiberId.none)
            subscriptions.set(id, { l2psUid, key, scope, ready })
            return broker.subscribe(subjectOf(l2psUid, key), (_, data) => {
              const item = decode(origin, l2psUid, key, data)
              if (item !== undefined && !inbound.tryOffer(item)) dropped++
            }).pipe(
              Scope.extend(scope),
              // Without this round trip a message committed elsewhere between this node's SUB and the
              // server's taking it would be neither in the registration's read nor pushed here.
              Effect.zipRight(broker.flush),
              Effect.ensuring(Deferred.done(ready, Exit.void))
            )
          })
        }
        // Another session of the key may be reading storage while the first one's SUB is unconfirmed.
        if (local && sub !== undefined) return Deferred.await(sub.ready)
        if (!local && sub !== undefined) {
          subscriptions.delete(id)
          return Scope.close(sub.scope, Exit.void)
        }
        return Effect.void
      })

    // Publications leave from their own fiber: a send's completion (plain code) only queues them.
    const outbound = new BatchQueue<{ readonly subject: string; readonly data: Uint8Array }>(
      OUTBOUND_MAX,
      QUEUE_BYTES,
      (m) => m.data.length
    )
    const publish = (kind: Kind, l2psUid: string, key: string, id: string, messageHash: string, frame: string) => {
      if (!outbound.tryOffer({ subject: subjectOf(l2psUid, key), data: encode(kind, origin, id, messageHash, frame) })) dropped++
    }
    yield* supervise(
      "cluster/publish",
      Effect.forever(Effect.zipRight(
        outbound.nonEmpty,
        Effect.suspend(() =>
          Effect.forEach(outbound.takeUpTo(INBOUND_BATCH, Number.MAX_SAFE_INTEGER), (m) => broker.publish(m.subject, m.data), { discard: true }))
      ))
    )

    /**
     * Writes the pushed messages as a local commit would have: the message is marked handed over first
     * (sent, or awaiting the ack of sessions that all acknowledge), then pushed; a message no session
     * took goes back to the queue and its sessions catch up from storage.
     */
    const deliver = (items: ReadonlyArray<Inbound>) =>
      Effect.gen(function*() {
        const messages: Array<{ readonly item: Inbound; readonly targets: ReadonlyArray<Peer> }> = []
        const awaitingAck: Array<string> = []
        const handed: Array<string> = []
        for (const item of items) {
          const online = peers.unsafeOnline(item.l2psUid, item.key)
          if (item.kind === Kind.Receipt || item.kind === Kind.Sealed) {
            const dot = item.id.indexOf(".")
            const at = Number(item.id.slice(0, dot))
            const full = dot > 0 && Number.isSafeInteger(at) ? deliveredFrame(item.messageHash, at, item.id.slice(dot + 1)) : undefined
            const plain = item.kind === Kind.Receipt ? item.frame : undefined
            for (const p of online) {
              const text = p.receipts && full !== undefined ? full : plain
              if (text !== undefined) p.push(text)
            }
            continue
          }
          if (item.kind === Kind.Copy) {
            for (const p of online) if (p.copies && p.canAccept()) p.push(item.frame)
            continue
          }
          const targets = online.filter((p) => p.canAccept())
          if (targets.length === 0) {
            for (const p of online) p.requestFlush()
            continue
          }
          messages.push({ item, targets })
          ;(targets.every((p) => p.ackCapable) ? awaitingAck : handed).push(item.id)
        }
        if (messages.length === 0) return
        const now = yield* Clock.currentTimeMillis
        // Pushed even when storage did not answer: the message is then still queued, delivered again later.
        yield* Effect.all([storage.markHanded(awaitingAck, true, now), storage.markHanded(handed, false, now)], { discard: true }).pipe(
          Effect.catchAll((e) => Effect.logWarning("marking pushed messages handed over failed", e.cause))
        )
        const raced: Array<string> = []
        let delivered = 0
        for (const { item, targets } of messages) {
          let n = 0
          for (const r of targets) {
            if (!r.push(item.frame, r.ackCapable ? undefined : item.id)) continue
            n++
            if (r.ackCapable) r.handed(item.messageHash)
          }
          delivered += n
          if (n === 0) raced.push(item.id)
        }
        if (delivered > 0) Metrics.messagesOut.unsafeUpdate(delivered, [])
        if (raced.length > 0) {
          yield* storage.requeue(raced).pipe(Effect.catchAll((e) => Effect.logError("requeue of raced pushes failed", e.cause)))
          for (const { item } of messages) for (const p of peers.unsafeOnline(item.l2psUid, item.key)) p.requestFlush()
        }
      })

    yield* supervise(
      "cluster/deliver",
      Effect.forever(Effect.zipRight(
        inbound.nonEmpty,
        Effect.suspend(() => deliver(inbound.takeUpTo(INBOUND_BATCH, Number.MAX_SAFE_INTEGER)))
      ))
    )

    /**
     * Every local key's storage is probed, RESYNC_KEYS at a time, and the sessions of those with
     * something waiting catch up from it (as a session whose outbox was full does).
     */
    let cursor = 0
    const resync = (all: boolean) =>
      Effect.gen(function*() {
        const keys = [...subscriptions.values()]
        if (keys.length === 0) return
        const rounds = all ? Math.ceil(keys.length / RESYNC_KEYS) : 1
        for (let round = 0; round < rounds; round++) {
          if (cursor >= keys.length) cursor = 0
          const batch = keys.slice(cursor, cursor + RESYNC_KEYS)
          cursor += batch.length
          const waiting = yield* storage.waiting(batch.map((k) => ({ l2psUid: k.l2psUid, to: k.key })))
          batch.forEach((k, i) => {
            if (waiting[i] === true) for (const p of peers.unsafeOnline(k.l2psUid, k.key)) p.requestFlush()
          })
        }
        if (dropped > 0) {
          yield* Effect.logWarning(`${dropped} bus pushes dropped (a queue to or from the bus was full); read from storage instead`)
          dropped = 0
        }
      }).pipe(Effect.catchAll((e) => Effect.logWarning("cluster resync could not read storage", e.cause)))

    yield* supervise("cluster/resync", Effect.repeat(resync(false), Schedule.spaced(cfg.clusterResyncMillis)))
    // Back on the bus after a loss: whatever was pushed meanwhile is read from storage at once.
    let wasDown = false
    yield* supervise(
      "cluster/reconnect",
      Stream.runForEach(broker.states, (state) =>
        Effect.suspend(() => {
          if (state !== "connected") {
            wasDown = true
            return Effect.void
          }
          if (!wasDown) return Effect.void
          wasDown = false
          return resync(true)
        }))
    )

    return ClusterRouter.of({
      clustered: true,
      track,
      unsafeStored: (l2psUid, to, id, messageHash, frame) => publish(Kind.Message, l2psUid, to, id, messageHash, frame),
      unsafeCopy: (l2psUid, from, frame) => publish(Kind.Copy, l2psUid, from, "", "", frame),
      unsafeReceipt: (l2psUid, from, messageHash, at, fresh, receipt) => {
        const id = receipt === undefined ? "" : `${at}.${receipt}`
        if (fresh) publish(Kind.Receipt, l2psUid, from, id, messageHash, deliveredFrame(messageHash, at))
        else if (receipt !== undefined) publish(Kind.Sealed, l2psUid, from, id, messageHash, "")
      }
    })
  })

/** NATS makes the node a cluster member; without a bus (or with the one-node bus) nothing is routed. */
export const layer: Layer.Layer<ClusterRouter, never, NodeConfig | Peers | Storage> = Layer.scoped(
  ClusterRouter,
  Effect.flatMap(Effect.serviceOption(Broker), (broker) =>
    Option.isSome(broker) && broker.value.kind === "nats" ? make(broker.value) : Effect.succeed(single))
)
