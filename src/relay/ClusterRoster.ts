import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { NodeIdentity } from "../config/NodeIdentity.ts"
import { type AddedSession, type RosterSession, RosterStore, type RosterTransition } from "../internal/RosterStore.ts"
import { supervise } from "../internal/supervise.ts"
import { Broker, type BrokerShape } from "../transport/Broker.ts"
import { EVICTED_CODE } from "./handlers/Register.ts"
import { pageOfKeys, type Peer, Peers } from "./Peers.ts"
import { Presence } from "./Presence.ts"
import { layerLocal, Roster } from "./Roster.ts"

/** A batch of this node's registrations and departures is written this often at most. */
export const FLUSH_MILLIS = 25
/** Changes written in one transaction (and announced in one bus message). */
export const MAX_BATCH = 500
/** The whole table is read again this often (and after a bus reconnect): lost bus messages are repaired by it. */
export const RESYNC_MILLIS = 5000
/** How often a node looks for dead nodes' sessions. */
export const JANITOR_MILLIS = 1000
/** A node whose heartbeat is this old is dead even if its lock is held (a frozen process). */
export const STALE_MILLIS = 15_000
/** Bus messages waiting to be applied; past it they are dropped and the next read of the table repairs the copy. */
const INBOX = 1024

export const CHANGES_SUBJECT = "im.roster.changes"
export const evictSubject = (node: string) => `im.roster.evict.${node}`

/**
 * What a node tells the others after it changed the table: sessions added by it (`a`: network, key,
 * sid, since), sessions removed by it or its janitor (`d`: node, network, key, sid), and the keys
 * whose first session came or last went (`t`: network, key, 1 or 0).
 */
interface Changes {
  readonly n: string
  readonly a: ReadonlyArray<readonly [string, string, number, number]>
  readonly d: ReadonlyArray<readonly [string, string, string, number]>
  readonly t: ReadonlyArray<readonly [string, string, 0 | 1]>
}

const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 256
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v)

/** Another node's message, checked entry by entry: a malformed one is dropped whole. */
const decodeChanges = (data: Uint8Array): Changes | undefined => {
  try {
    const v = JSON.parse(new TextDecoder().decode(data)) as Changes
    if (!isStr(v.n) || !Array.isArray(v.a) || !Array.isArray(v.d) || !Array.isArray(v.t)) return undefined
    if (v.a.length + v.d.length + v.t.length > 4 * MAX_BATCH) return undefined
    const ok = v.a.every((e) => Array.isArray(e) && isStr(e[0]) && isStr(e[1]) && isNum(e[2]) && isNum(e[3])) &&
      v.d.every((e) => Array.isArray(e) && isStr(e[0]) && isStr(e[1]) && isStr(e[2]) && isNum(e[3])) &&
      v.t.every((e) => Array.isArray(e) && isStr(e[0]) && isStr(e[1]) && (e[2] === 0 || e[2] === 1))
    return ok ? v : undefined
  } catch {
    return undefined
  }
}

interface LocalSession {
  readonly peer: Peer
  readonly session: RosterSession
  readonly cap: number
}

/** The latest wanted state of one of this node's sessions, not yet written. */
type PendingOp = { readonly present: true; readonly added: AddedSession } | { readonly present: false; readonly session: RosterSession }

/**
 * Presence and the session cap across the nodes of a cluster. Each node writes its sessions to the
 * shared table in batches (`RosterStore`), which decides per key, under a lock, the first and last
 * session of the whole cluster and the sessions over the cap; the writing node then tells the others
 * on the bus, and every node announces `peer_joined` / `peer_left` to its own sessions through
 * `Presence` (rate-limited per key as alone). Each node keeps a copy of every node's sessions for
 * `discover` and the register answer, from those messages, repaired by reading the table every
 * `RESYNC_MILLIS` and after a bus reconnect. A session evicted by the cap on another node is closed
 * there by a bus message, or at that node's next read of the table if the message was lost. A
 * janitor on every node deletes the sessions of dead nodes.
 */
export const make = (broker: BrokerShape, self: string) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    const peers = yield* Peers
    const presence = yield* Presence

    const local = new Map<number, LocalSession>()
    const sidOf = new Map<Peer, number>()
    const pending = new Map<number, PendingOp>()
    let nextSid = 0
    let resyncWanted = true

    /** Every node's counted sessions: network → key → `node/sid` → since, keys in order of arrival. */
    const copy = new Map<string, Map<string, Map<string, number>>>()
    const refOf = (node: string, sid: number) => `${node}/${sid}`
    const copyAdd = (s: RosterSession) => {
      let keys = copy.get(s.l2psUid)
      if (keys === undefined) copy.set(s.l2psUid, keys = new Map())
      let refs = keys.get(s.key)
      if (refs === undefined) keys.set(s.key, refs = new Map())
      refs.set(refOf(s.node, s.sid), s.since)
    }
    const copyRemove = (node: string, l2psUid: string, key: string, sid: number) => {
      const keys = copy.get(l2psUid)
      const refs = keys?.get(key)
      if (refs === undefined) return
      refs.delete(refOf(node, sid))
      if (refs.size > 0) return
      keys!.delete(key)
      if (keys!.size === 0) copy.delete(l2psUid)
    }
    const inCopy = (l2psUid: string, key: string) => copy.get(l2psUid)?.has(key) ?? false
    const applyCopy = (c: Changes) => {
      for (const [node, l2psUid, key, sid] of c.d) copyRemove(node, l2psUid, key, sid)
      for (const [l2psUid, key, sid, since] of c.a) copyAdd({ node: c.n, sid, l2psUid, key, since })
    }

    const encoder = new TextEncoder()
    const publishChanges = (c: Omit<Changes, "n">) =>
      c.a.length + c.d.length + c.t.length === 0
        ? Effect.void
        : broker.publish(CHANGES_SUBJECT, encoder.encode(JSON.stringify({ n: self, ...c })))

    /** Announces to this node's sessions the transitions the copy agrees with (a disagreeing one waits for the next read). */
    const announce = (transitions: ReadonlyArray<readonly [string, string, boolean]>) =>
      Effect.forEach(transitions, ([l2psUid, key, online]) =>
        inCopy(l2psUid, key) === online ? presence.changed(l2psUid, key, online) : Effect.void, { discard: true })
    const asTuples = (ts: ReadonlyArray<RosterTransition>) => ts.map((t) => [t.l2psUid, t.key, t.online] as const)

    const evictLocal = (sid: number) => {
      // The close unregisters the session, whose removal deletes its row.
      local.get(sid)?.peer.close(EVICTED_CODE, "Replaced by a newer session of the same key")
    }

    const flush = Effect.gen(function*() {
      const gone: Array<RosterSession> = []
      const added: Array<AddedSession> = []
      const taken: Array<[number, PendingOp]> = []
      for (const [sid, op] of pending) {
        if (taken.length === MAX_BATCH) break
        taken.push([sid, op])
        if (op.present) added.push(op.added)
        else gone.push(op.session)
      }
      for (const [sid] of taken) pending.delete(sid)
      const result = yield* Effect.either(store.apply(gone, added))
      if (result._tag === "Left") {
        // Put back unless a newer wish replaced it meanwhile; tried again at the next turn.
        for (const [sid, op] of taken) if (!pending.has(sid)) pending.set(sid, op)
        return yield* Effect.fail(result.left)
      }
      const { evicted, transitions } = result.right
      const out = new Set(evicted.map((e) => refOf(e.node, e.sid)))
      for (const g of gone) copyRemove(g.node, g.l2psUid, g.key, g.sid)
      for (const a of added) if (!out.has(refOf(a.node, a.sid))) copyAdd(a)
      for (const e of evicted) copyRemove(e.node, e.l2psUid, e.key, e.sid)
      yield* announce(asTuples(transitions))
      const byNode = new Map<string, Array<number>>()
      for (const e of evicted) {
        if (e.node === self) evictLocal(e.sid)
        else byNode.set(e.node, [...(byNode.get(e.node) ?? []), e.sid])
      }
      for (const [node, sids] of byNode) yield* broker.publish(evictSubject(node), encoder.encode(JSON.stringify(sids)))
      yield* publishChanges({
        a: added.filter((a) => !out.has(refOf(a.node, a.sid))).map((a) => [a.l2psUid, a.key, a.sid, a.since] as const),
        d: [...gone, ...evicted].map((g) => [g.node, g.l2psUid, g.key, g.sid] as const),
        t: transitions.map((t) => [t.l2psUid, t.key, t.online ? 1 : 0] as const)
      })
    })

    /** Other nodes' changes that arrived while the table was being read, applied again on the new copy. */
    let during: Array<Changes> | undefined

    /** The table read again: the copy replaced, and this node's own rows set right. */
    const resync = Effect.gen(function*() {
      resyncWanted = false
      during = []
      const snap = yield* store.snapshot(self).pipe(Effect.onError(() => Effect.sync(() => { during = undefined })))
      const replay = during
      during = undefined
      const before = new Set<string>()
      for (const [l2psUid, keys] of copy) for (const key of keys.keys()) before.add(`${l2psUid}\u0000${key}`)
      copy.clear()
      const mine = new Set<number>()
      for (const s of snap.sessions) {
        copyAdd(s)
        if (s.node === self) mine.add(s.sid)
      }
      // Idempotent, in order: what was already in the read changes nothing.
      for (const c of replay) applyCopy(c)
      for (const sid of snap.evicted) {
        mine.add(sid)
        if (!pending.has(sid)) evictLocal(sid)
      }
      // Rows of sessions gone unnoticed are deleted; sessions without a row (purged while this node
      // seemed dead) are written again.
      for (const s of snap.sessions) {
        if (s.node === self && !local.has(s.sid) && !pending.has(s.sid)) pending.set(s.sid, { present: false, session: s })
      }
      for (const [sid, l] of local) {
        if (!mine.has(sid) && !pending.has(sid)) pending.set(sid, { present: true, added: { ...l.session, cap: l.cap } })
      }
      const changes: Array<readonly [string, string, boolean]> = []
      for (const [l2psUid, keys] of copy) {
        for (const key of keys.keys()) if (!before.delete(`${l2psUid}\u0000${key}`)) changes.push([l2psUid, key, true])
      }
      for (const id of before) {
        const [l2psUid, key] = id.split("\u0000") as [string, string]
        changes.push([l2psUid, key, false])
      }
      yield* announce(changes)
    })

    const janitor = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const purged = yield* store.purge(self, now - STALE_MILLIS)
      if (purged.nodes.length === 0) return
      yield* Effect.logWarning(`purged the sessions of ${purged.nodes.join(", ")} (${purged.removed.length}): node gone`)
      for (const s of purged.removed) copyRemove(s.node, s.l2psUid, s.key, s.sid)
      yield* announce(asTuples(purged.transitions))
      yield* publishChanges({
        a: [],
        d: purged.removed.map((s) => [s.node, s.l2psUid, s.key, s.sid] as const),
        t: purged.transitions.map((t) => [t.l2psUid, t.key, t.online ? 1 : 0] as const)
      })
    })

    const inbox = yield* Queue.dropping<Changes>(INBOX)
    const apply = (c: Changes) =>
      Effect.gen(function*() {
        applyCopy(c)
        during?.push(c)
        yield* announce(c.t.map(([l2psUid, key, online]) => [l2psUid, key, online === 1] as const))
      })

    yield* broker.subscribe(CHANGES_SUBJECT, (_subject, data) => {
      const c = decodeChanges(data)
      // Its own changes this node applied when it wrote them.
      if (c === undefined || c.n === self) return
      if (!inbox.unsafeOffer(c)) resyncWanted = true
    })
    yield* broker.subscribe(evictSubject(self), (_subject, data) => {
      try {
        const sids = JSON.parse(new TextDecoder().decode(data)) as unknown
        if (Array.isArray(sids) && sids.length <= MAX_BATCH) for (const sid of sids) if (isNum(sid)) evictLocal(sid)
      } catch {
        // Malformed: ignored; the next read of the table finds the evicted rows.
      }
    })
    yield* supervise("roster/inbox", Effect.forever(Effect.flatMap(Queue.take(inbox), apply)))
    yield* supervise(
      "roster/bus",
      broker.states.pipe(
        Stream.changes,
        Stream.filter((s) => s === "connected"),
        Stream.drop(1),
        Stream.runForEach(() => Effect.sync(() => { resyncWanted = true }))
      )
    )

    // Rows left by this node's earlier run (a crash) leave first, announced as any dead node's.
    const earlier = yield* Effect.either(store.purge(self, 0, self))
    if (earlier._tag === "Right" && earlier.right.removed.length > 0) {
      yield* publishChanges({
        a: [],
        d: earlier.right.removed.map((s) => [s.node, s.l2psUid, s.key, s.sid] as const),
        t: earlier.right.transitions.map((t) => [t.l2psUid, t.key, t.online ? 1 : 0] as const)
      })
    }

    // One fiber writes, purges and reads the table, so that the copy never mixes a read with a change
    // made during it by this node.
    let lastResync = 0
    let lastJanitor = 0
    const turn = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (now - lastJanitor >= JANITOR_MILLIS) {
        lastJanitor = now
        yield* janitor
      }
      if (resyncWanted || now - lastResync >= RESYNC_MILLIS) {
        lastResync = now
        yield* resync
      }
      // A few batches a turn, so that a long storm still lets the janitor and the reads run.
      for (let i = 0; i < 8 && pending.size > 0; i++) yield* flush
    })
    yield* supervise("roster/writer", Effect.repeat(turn, Schedule.spaced(FLUSH_MILLIS)))
    // Best effort at a stop: the sessions closed by it leave at once rather than at the others' janitor.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => pending.size > 0 ? flush : Effect.void).pipe(
        Effect.repeat({ while: () => pending.size > 0 }),
        Effect.timeout("2 seconds"),
        Effect.ignore
      ))

    const add = (peer: Peer, maxPerKey: number) =>
      Effect.flatMap(peers.add(peer, Number.POSITIVE_INFINITY), (r) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const sid = ++nextSid
          const session: RosterSession = { node: self, sid, l2psUid: peer.l2psUid, key: peer.key, since: now }
          local.set(sid, { peer, session, cap: maxPerKey })
          sidOf.set(peer, sid)
          pending.set(sid, { present: true, added: { ...session, cap: maxPerKey } })
          return { first: false, evicted: r.evicted }
        }))

    const remove = (peer: Peer) =>
      Effect.map(peers.remove(peer), (r) => {
        const sid = sidOf.get(peer)
        if (sid !== undefined) {
          const l = local.get(sid)!
          sidOf.delete(peer)
          local.delete(sid)
          // Never written: nothing to delete.
          if (pending.get(sid)?.present === true) pending.delete(sid)
          else pending.set(sid, { present: false, session: l.session })
        }
        return { last: false, removed: r.removed }
      })

    return Roster.of({
      kind: "cluster",
      add,
      remove,
      keysPage: (l2psUid, offset, max) => Effect.sync(() => pageOfKeys(copy.get(l2psUid), offset, max)),
      isOnline: (l2psUid, key) => Effect.sync(() => inCopy(l2psUid, key) || peers.unsafeOnline(l2psUid, key).length > 0)
    })
  })

/**
 * The cluster roster when the host gave a `RosterStore`, a `Broker` and a `NodeIdentity` (a cluster
 * member); otherwise this node's `Peers` alone.
 */
export const layer: Layer.Layer<Roster, never, Peers | Presence> = Layer.unwrapEffect(
  Effect.map(
    Effect.all([Effect.serviceOption(RosterStore), Effect.serviceOption(Broker), Effect.serviceOption(NodeIdentity)]),
    ([store, broker, identity]) =>
      Option.isSome(store) && Option.isSome(broker) && Option.isSome(identity)
        ? Layer.scoped(Roster, make(broker.value, identity.value.id).pipe(Effect.provideService(RosterStore, store.value)))
        : layerLocal
  )
)
