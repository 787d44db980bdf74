/**
 * The connection core's phase machine and teardown, driven directly with a fake socket: what both
 * servers' connections rely on when a socket closes while work is under way.
 */
import { describe, expect, test } from "bun:test"
import { Deferred, Effect, FiberSet } from "effect"
import { ConnectionActor } from "../../src/connection/ConnectionActor.ts"
import * as StallWatch from "../../src/connection/StallWatch.ts"
import type { Connection } from "../../src/transport/Transport.ts"

const fakeConnection = () => {
  const sent: Array<string> = []
  const closes: Array<number> = []
  const conn: Connection = {
    remoteAddress: "127.0.0.1",
    send: (text) => {
      sent.push(text)
      return "ok"
    },
    close: (code) => {
      closes.push(code)
    },
    terminate: () => {},
    subscribe: () => {},
    unsubscribe: () => {},
    publish: () => {}
  }
  return { conn, sent, closes }
}

/**
 * An actor whose inbox holds names of steps; `steps[name]` is run by the processor. `log` records
 * handled steps and teardown; `registry` stands for the server's registered peers.
 */
const harness = (steps: Record<string, (actor: ConnectionActor<string>) => Effect.Effect<void>>, teardown: Array<Effect.Effect<void>> = []) =>
  Effect.gen(function*() {
    const set = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(set)<never>()
    const stalls = yield* StallWatch.make(10_000)
    const { conn, sent, closes } = fakeConnection()
    const log: Array<string> = []
    const registry = new Set<number>()
    const actor: ConnectionActor<string> = new ConnectionActor<string>({
      conn,
      inboxCapacity: 4,
      outbox: { capacity: 8, reserved: 2, maxLiveBytes: 1000, maxBytes: 1000 },
      frameRate: 100,
      frameBurst: 100,
      stalls,
      fork,
      protocol: {
        nextStep: () => {
          const name = actor.inbox.poll()
          if (name === undefined) return undefined
          return Effect.zipRight(Effect.sync(() => log.push(name)), steps[name]!(actor))
        },
        teardownSteps: () => [
          Effect.sync(() => {
            log.push("unregister")
            registry.delete(actor.id)
          }),
          ...teardown,
          Effect.sync(() => {
            log.push("requeue")
          })
        ]
      }
    })
    const register = Effect.sync(() => {
      if (actor.unsafeRegistered()) registry.add(actor.id)
    })
    return { actor, set, sent, closes, log, registry, register }
  })

const run = <A, E>(effect: Effect.Effect<A, E, import("effect/Scope").Scope>) => Effect.runPromise(Effect.scoped(effect))

describe("the connection core", () => {
  test("a quiet connection has no fiber: the processor ends when the inbox is empty", () =>
    run(Effect.gen(function*() {
      const h = yield* harness({ ping: (a) => Effect.sync(() => a.outbox.pushOwn("pong")) })
      expect(h.actor.phase).toBe("opening")
      h.actor.unsafeOffer("ping")
      h.actor.unsafeOffer("ping")
      yield* Effect.yieldNow()
      expect(h.sent).toEqual(["pong", "pong"])
      expect(h.actor.isIdle).toBe(true)
      expect(yield* FiberSet.size(h.set)).toBe(0)
    })))

  test("a full inbox closes the socket instead of growing", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const h = yield* harness({ wait: () => Deferred.await(gate) })
      for (let i = 0; i < 6; i++) h.actor.unsafeOffer("wait")
      // One taken by the processor, four queued, the sixth refused.
      expect(h.closes).toEqual([1008])
      yield* Deferred.succeed(gate, undefined)
    })))

  test("teardown runs exactly once, through the scope, however many close; every caller returns after it", () =>
    run(Effect.gen(function*() {
      const slow = yield* Deferred.make<void>()
      const h = yield* harness({}, [Effect.zipRight(Effect.sync(() => {}), Deferred.await(slow))])
      const first = yield* Effect.fork(h.actor.close)
      const second = yield* Effect.fork(h.actor.close)
      h.actor.unsafeClose()
      yield* Effect.yieldNow()
      expect(h.actor.phase).toBe("closing")
      // Finalizers run in the order given: the second one waits, the third has not run.
      expect(h.log).toEqual(["unregister"])
      expect(first.unsafePoll()).toBeNull()
      expect(second.unsafePoll()).toBeNull()
      yield* Deferred.succeed(slow, undefined)
      yield* first.await
      yield* second.await
      yield* h.actor.close
      expect(h.actor.phase).toBe("closed")
      expect(h.log).toEqual(["unregister", "requeue"])
      // A finalizer added after the close runs at once, as a closed scope's do.
      yield* h.actor.addFinalizer(Effect.sync(() => h.log.push("late")))
      expect(h.log).toEqual(["unregister", "requeue", "late"])
    })))

  test("a frame arriving while closing is neither queued nor handled", () =>
    run(Effect.gen(function*() {
      const slow = yield* Deferred.make<void>()
      const h = yield* harness({ ping: (a) => Effect.sync(() => a.outbox.pushOwn("pong")) }, [Deferred.await(slow)])
      const closing = yield* Effect.fork(h.actor.close)
      yield* Effect.yieldNow()
      expect(h.actor.phase).toBe("closing")
      h.actor.unsafeOffer("ping")
      h.actor.unsafeWake()
      expect(h.actor.inbox.size).toBe(0)
      yield* Deferred.succeed(slow, undefined)
      yield* closing.await
      expect(h.log).toEqual(["unregister", "requeue"])
      expect(h.sent).toEqual([])
      expect(yield* FiberSet.size(h.set)).toBe(0)
    })))

  test("a close during registration abandons it: the handler is interrupted, nothing stays registered", () =>
    run(Effect.gen(function*() {
      const proofChecked = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      let registerStep: Effect.Effect<void> = Effect.void
      const h = yield* harness({ register: () => registerStep })
      registerStep = Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(proofChecked)).pipe(Effect.zipRight(h.register))
      h.actor.unsafeOffer("register")
      yield* Deferred.await(started)
      yield* h.actor.close
      expect(h.actor.phase).toBe("closed")
      expect(h.registry.size).toBe(0)
      expect(h.log).toEqual(["register", "unregister", "requeue"])
      // A registration finishing afterwards cannot bring the connection back.
      expect(h.actor.unsafeRegistered()).toBe(false)
      expect(h.actor.phase).toBe("closed")
    })))

  test("a registration that completes while closing (past its last interruption point) is undone by the teardown", () =>
    run(Effect.gen(function*() {
      const proofChecked = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      let registerStep: Effect.Effect<void> = Effect.void
      const h = yield* harness({ register: () => registerStep })
      registerStep = Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(proofChecked)).pipe(
        Effect.zipRight(Effect.sync(() => h.registry.add(h.actor.id))),
        Effect.uninterruptible
      )
      h.actor.unsafeOffer("register")
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(h.actor.close)
      yield* Effect.yieldNow()
      // The close waits for the handler it cannot interrupt, then tears down.
      expect(h.log).toEqual(["register"])
      yield* Deferred.succeed(proofChecked, undefined)
      yield* closing.await
      expect(h.registry.size).toBe(0)
      expect(h.log).toEqual(["register", "unregister", "requeue"])
    })))

  test("phases: opening → registered → opening on unregistering → closing → closed", () =>
    run(Effect.gen(function*() {
      const h = yield* harness({})
      yield* h.register
      expect(h.actor.phase).toBe("registered")
      h.actor.unsafeUnregistered()
      expect(h.actor.phase).toBe("opening")
      yield* h.register
      h.actor.unsafeStop()
      expect(h.actor.phase).toBe("closing")
      expect(h.actor.unsafeRegistered()).toBe(false)
      // Stopped by an eviction, the teardown still runs on close.
      yield* h.actor.close
      expect(h.actor.phase).toBe("closed")
      expect(h.registry.size).toBe(0)
    })))
})
