import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"

/**
 * The bus between the nodes of a cluster. It carries pushes and wake-ups only and may lose them:
 * every acknowledged message is already stored, and a node reads storage again after a reconnect.
 */
export type BrokerState = "connecting" | "connected" | "disconnected" | "closed"

/** Called synchronously for each message on a subscribed subject; it must not block (offer, don't wait). */
export type BrokerHandler = (subject: string, data: Uint8Array) => void

export interface BrokerShape {
  /** `memory`: one node, no bus; `nats`: a cluster member. */
  readonly kind: "memory" | "nats"
  /**
   * Fire and forget: never fails, and a message published while the bus is down may be lost. On NATS
   * it reaches the other nodes' subscriptions only (no echo); on one node, this node's.
   */
  readonly publish: (subject: string, data: Uint8Array) => Effect.Effect<void>
  /** Until the scope closes. Subjects are dot-separated tokens; `*` matches one token, `>` the rest. */
  readonly subscribe: (subject: string, handler: BrokerHandler) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Once the bus has every subscription asked for before this call (a round trip to the server), so
   * that what is published after that reaches them. Never fails and never waits long: with the bus
   * down or slow it returns after a bounded wait, and the reads after a reconnect and on a period
   * deliver what that subscription missed.
   */
  readonly flush: Effect.Effect<void>
  readonly state: Effect.Effect<BrokerState>
  /** The current state, then every change: a return to `connected` means pushes may have been missed. */
  readonly states: Stream.Stream<BrokerState>
  /** Times the link came back after a loss since start-up. */
  readonly reconnects: Effect.Effect<number>
}

export class Broker extends Context.Tag("im/Broker")<Broker, BrokerShape>() {}

/** Whether `subject` matches `pattern` (NATS rules: `*` one token, `>` one or more trailing tokens). */
export const matches = (pattern: string, subject: string): boolean => {
  if (pattern === subject) return true
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i
    if (i >= s.length) return false
    if (p[i] !== "*" && p[i] !== s[i]) return false
  }
  return p.length === s.length
}

/**
 * Handlers by subject, shared by both layers: the bus sees one subscription per subject however
 * many local sessions want it. `onFirst` / `onLast` open and close that one subscription.
 */
export const makeRegistry = (hooks: {
  readonly onFirst: (subject: string) => void
  readonly onLast: (subject: string) => void
}) => {
  const bySubject = new Map<string, Set<BrokerHandler>>()
  // Kept apart so that a local publish costs one lookup, not a match against every key's subject.
  const wildcards = new Set<string>()
  const add = (subject: string, handler: BrokerHandler) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        let set = bySubject.get(subject)
        if (set === undefined) {
          set = new Set()
          bySubject.set(subject, set)
          if (/(^|\.)(\*|>)(\.|$)/.test(subject)) wildcards.add(subject)
          hooks.onFirst(subject)
        }
        // A fresh entry per call: the same function subscribed twice is released twice.
        const entry: BrokerHandler = (s, d) => handler(s, d)
        set.add(entry)
        return entry
      }),
      (entry) =>
        Effect.sync(() => {
          const set = bySubject.get(subject)
          if (set === undefined) return
          set.delete(entry)
          if (set.size === 0) {
            bySubject.delete(subject)
            wildcards.delete(subject)
            hooks.onLast(subject)
          }
        })
    ).pipe(Effect.asVoid)
  /** Delivers to the handlers of one subscription subject (the bus already matched it). */
  const dispatch = (pattern: string, subject: string, data: Uint8Array) => {
    const set = bySubject.get(pattern)
    if (set === undefined) return
    for (const handler of set) {
      try {
        handler(subject, data)
      } catch {
        // A handler's fault must not stop delivery to the others; handlers only offer to queues.
      }
    }
  }
  /** Delivers a message published on this node to every matching local subscription (no bus). */
  const deliverLocal = (subject: string, data: Uint8Array) => {
    dispatch(subject, subject, data)
    for (const pattern of wildcards) if (matches(pattern, subject)) dispatch(pattern, subject, data)
  }
  return { add, dispatch, deliverLocal, subjects: () => bySubject.keys() }
}

/**
 * One node, no bus: a publish reaches this node's own subscribers at once, through the same
 * subscribe/publish code a cluster member runs.
 */
export const layerMemory: Layer.Layer<Broker> = Layer.effect(
  Broker,
  Effect.gen(function*() {
    const state = yield* SubscriptionRef.make<BrokerState>("connected")
    const registry = makeRegistry({ onFirst: () => {}, onLast: () => {} })
    const publish = (subject: string, data: Uint8Array) => Effect.sync(() => registry.deliverLocal(subject, data))
    return Broker.of({
      kind: "memory",
      publish,
      subscribe: registry.add,
      // A local subscription is live as soon as it is registered.
      flush: Effect.void,
      state: SubscriptionRef.get(state),
      states: state.changes,
      reconnects: Effect.succeed(0)
    })
  })
)
