import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** A registered session as other sessions see it. */
export interface Peer {
  readonly id: number
  readonly key: string
  readonly l2psUid: string
  readonly ackCapable: boolean
  /** Whether it takes a copy of what its key's other sessions send (see `Registration.copies`). */
  readonly copies: boolean
  /** Whether its `message_delivered` frames carry sealed receipts (capability "receipts"). */
  readonly receipts: boolean
  /** Whether live delivery to it is possible now (its outbox has room and it is not catching up). */
  readonly canAccept: () => boolean
  /** Notes a message handed to this session while it awaits its `ack`: only such messages can it acknowledge. */
  readonly handed: (messageHash: string) => void
  /** Non-blocking; false when its outbox is full (it then catches up from storage). */
  readonly push: (text: string, messageId?: string) => boolean
  /** Asks it to deliver what is queued for its key once its outbox has drained. */
  readonly requestFlush: () => void
  readonly close: (code: number, reason: string) => void
  /** Its socket's topic subscriptions and server-wide publishing (see `Connection`). */
  readonly subscribe: (topic: string) => void
  readonly unsubscribe: (topic: string) => void
  readonly publish: (topic: string, text: string) => void
}

/** Every registered session of a network is subscribed to its presence topic. */
const presenceTopic = (l2psUid: string) => `presence:${l2psUid}`

/** Live sessions by network and key; presence is derived from it. */
export class Peers extends Context.Tag("im/Peers")<Peers, {
  /** Adds a session; returns whether it is its key's first and the sessions evicted over the cap. */
  readonly add: (peer: Peer, maxPerKey: number) => Effect.Effect<{ first: boolean; evicted: ReadonlyArray<Peer> }>
  /** Removes a session; returns whether it was its key's last. */
  readonly remove: (peer: Peer) => Effect.Effect<{ last: boolean; removed: boolean }>
  readonly online: (l2psUid: string, key: string) => Effect.Effect<ReadonlyArray<Peer>>
  /** `online` from plain code. */
  readonly unsafeOnline: (l2psUid: string, key: string) => ReadonlyArray<Peer>
  readonly keys: (l2psUid: string) => Effect.Effect<ReadonlyArray<string>>
  /** At most `max` keys from the `offset`-th, in registration order, and how many the network has. */
  readonly keysPage: (l2psUid: string, offset: number, max: number) => Effect.Effect<{ readonly keys: ReadonlyArray<string>; readonly total: number }>
  /**
   * Sends a presence frame to every session of the network but those of `exceptKey`: one publish to the
   * network's topic, so that a registration storm costs one write per socket and loop turn, not one per
   * frame and socket.
   */
  readonly broadcast: (l2psUid: string, exceptKey: string, text: string) => Effect.Effect<void>
  readonly count: Effect.Effect<number>
  /** Every session, of one network or of all, in registration order per network. */
  readonly list: (l2psUid?: string) => Effect.Effect<ReadonlyArray<Peer>>
  /** Every session of a key, in any network. */
  readonly ofKey: (key: string) => Effect.Effect<ReadonlyArray<Peer>>
  /** Sessions and keys per network that has any. */
  readonly perNetwork: Effect.Effect<ReadonlyArray<{ readonly l2psUid: string; readonly sessions: number; readonly keys: number }>>
}>() {}

const none: ReadonlyArray<Peer> = []

export const layer: Layer.Layer<Peers> = Layer.sync(Peers, () => {
  const networks = new Map<string, Map<string, Array<Peer>>>()
  let total = 0
  const unsafeOnline = (l2psUid: string, key: string) => networks.get(l2psUid)?.get(key) ?? none
  return {
    count: Effect.sync(() => total),
    list: (l2psUid) =>
      Effect.sync(() => {
        const nets = l2psUid === undefined ? [...networks.values()] : [networks.get(l2psUid) ?? new Map<string, Array<Peer>>()]
        return nets.flatMap((keys) => [...keys.values()].flat())
      }),
    ofKey: (key) => Effect.sync(() => [...networks.values()].flatMap((keys) => keys.get(key) ?? none)),
    perNetwork: Effect.sync(() =>
      [...networks].map(([l2psUid, keys]) => {
        let sessions = 0
        for (const list of keys.values()) sessions += list.length
        return { l2psUid, sessions, keys: keys.size }
      })
    ),
    add: (peer, maxPerKey) =>
      Effect.sync(() => {
        let keys = networks.get(peer.l2psUid)
        if (keys === undefined) networks.set(peer.l2psUid, keys = new Map())
        let list = keys.get(peer.key)
        if (list === undefined) keys.set(peer.key, list = [])
        const first = list.length === 0
        list.push(peer)
        peer.subscribe(presenceTopic(peer.l2psUid))
        total++
        const evicted = list.length > maxPerKey ? list.splice(0, list.length - maxPerKey) : none
        for (const p of evicted) p.unsubscribe(presenceTopic(p.l2psUid))
        total -= evicted.length
        return { first, evicted }
      }),
    remove: (peer) =>
      Effect.sync(() => {
        const keys = networks.get(peer.l2psUid)
        const list = keys?.get(peer.key)
        const i = list?.indexOf(peer) ?? -1
        if (list === undefined || i < 0) return { last: false, removed: false }
        list.splice(i, 1)
        peer.unsubscribe(presenceTopic(peer.l2psUid))
        total--
        if (list.length > 0) return { last: false, removed: true }
        keys!.delete(peer.key)
        if (keys!.size === 0) networks.delete(peer.l2psUid)
        return { last: true, removed: true }
      }),
    online: (l2psUid, key) => Effect.sync(() => unsafeOnline(l2psUid, key)),
    unsafeOnline,
    keys: (l2psUid) => Effect.sync(() => [...(networks.get(l2psUid)?.keys() ?? [])]),
    keysPage: (l2psUid, offset, max) => Effect.sync(() => pageOfKeys(networks.get(l2psUid), offset, max)),
    broadcast: (l2psUid, exceptKey, text) =>
      Effect.sync(() => {
        const keys = networks.get(l2psUid)
        const publisher = keys?.values().next().value?.[0]
        if (publisher === undefined) return
        const topic = presenceTopic(l2psUid)
        // Any session can publish to the whole topic; those of `exceptKey` step out for the one frame.
        const except = keys!.get(exceptKey) ?? none
        for (const p of except) p.unsubscribe(topic)
        publisher.publish(topic, text)
        for (const p of except) p.subscribe(topic)
      })
  }
})

/** A page of a network's keys, in the order they came online (`discover`'s cursor is an offset). */
export const pageOfKeys = (
  keys: ReadonlyMap<string, unknown> | undefined,
  offset: number,
  max: number
): { readonly keys: ReadonlyArray<string>; readonly total: number } => {
  if (keys === undefined) return { keys: [], total: 0 }
  const page: Array<string> = []
  let i = 0
  for (const key of keys.keys()) {
    if (i++ < offset) continue
    if (page.length === max) break
    page.push(key)
  }
  return { keys: page, total: keys.size }
}
