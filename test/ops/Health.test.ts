/**
 * `/health` and `/ready` tell the truth: a scenario on TestClock (in-memory sockets, PGlite) with the
 * admin server on a real port and a host L1 that can hang, as in test/fault/L1Stall.test.ts. While L1
 * does not answer, or a batch waits past HEALTH_FINALITY_LAG_SECONDS, or a message waits unbatched past
 * HEALTH_BATCH_LAG_SECONDS, `/ready` answers 503 and both say "degraded" with the reasons; once L1 is
 * back and has confirmed everything, they are "ok" again.
 */
import { describe, expect, test } from "bun:test"
import { Effect, Fiber, Layer, TestClock, TestServices } from "effect"
import { L1 } from "../../src/l1/L1.ts"
import * as AdminServer from "../../src/ops/AdminServer.ts"
import { NodeStatus } from "../../src/ops/NodeStatus.ts"
import { freePort } from "../support/NodeProcess.ts"
import { makeTestL1 } from "../support/TestL1.ts"
import { peer, scenario } from "../support/TestNode.ts"

const liveSleep = (ms: number) => TestServices.provideLive(Effect.sleep(ms))

/** An L1 whose calls can be made to hang (accepted, never answered). */
const hangingL1 = () => {
  const { layer: base, control } = makeTestL1()
  let hang = false
  const guard = <A, E>(call: Effect.Effect<A, E>) => Effect.suspend(() => (hang ? Effect.never : call))
  const layer = Layer.effect(
    L1,
    Effect.map(L1, (l1) => L1.of({ name: "test", submit: (tx) => guard(l1.submit(tx)), inclusion: (h) => guard(l1.inclusion(h)), head: guard(l1.head) }))
  ).pipe(Layer.provide(base))
  return { layer, control, setHang: (h: boolean) => (hang = h) }
}

/** GETs a path of the admin port; the node's side runs on TestClock, so the clock is moved until it answers. */
const get = (port: number, path: string) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`).then(async (r) => ({ status: r.status, body: await r.json() as any }))))
    for (let i = 0; i < 200; i++) {
      const done = yield* Fiber.poll(fiber)
      if (done._tag === "Some") break
      yield* liveSleep(10)
      yield* TestClock.adjust(500)
    }
    return yield* Fiber.join(fiber)
  })

const eventually = <E, R>(what: string, cond: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 300; i++) {
      if (yield* cond) return
      yield* liveSleep(10)
      yield* TestClock.adjust(1000)
    }
    return yield* Effect.die(new Error(`never: ${what}`))
  })

describe("health and readiness", () => {
  test("L1 hanging, then batches unconfirmed past the finality threshold: degraded with reasons, /ready 503; ok again once L1 is back", () => {
    const l1 = hangingL1()
    const port = freePort()
    return scenario({
      adminPort: port,
      batchIntervalMillis: 1000,
      blockIntervalMillis: 1000,
      finalityDepth: 1,
      healthFinalityLagMillis: 60_000,
      healthBatchLagMillis: 600_000
    }, Effect.gen(function*() {
      yield* Layer.build(AdminServer.layer)
      const status = yield* NodeStatus
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register()
      yield* b.register()
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      yield* eventually("the batch submitted", Effect.sync(() => l1.control.accepted.length === 1))
      l1.control.mine()
      l1.control.mine()
      yield* eventually("the batch confirmed", Effect.map(status.networks, (ns) => ns.every((n) => n.unconfirmedBatches === 0)))

      const ok = yield* get(port, "/ready")
      expect(ok.status).toBe(200)
      expect(ok.body).toMatchObject({ status: "ok", reasons: [], ready: true, storage: "ok", migrations: "done", l1: { name: "test", reachable: true } })

      // L1 hangs: the head does not answer within the check's timeout.
      l1.setHang(true)
      const hung = yield* get(port, "/ready")
      expect(hung.status).toBe(503)
      expect(hung.body).toMatchObject({ status: "degraded", ready: false, reasons: ["L1 (test) unreachable"], l1: { reachable: false } })
      const live = yield* get(port, "/health")
      expect(live.status).toBe(200)
      expect(live.body).toMatchObject({ status: "degraded", reasons: ["L1 (test) unreachable"] })

      // Messages keep coming; their batch cannot be anchored, and waits past the finality threshold.
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      yield* TestClock.adjust(61_000)
      yield* liveSleep(20)
      const stalled = yield* get(port, "/ready")
      expect(stalled.status).toBe(503)
      expect(stalled.body.reasons[0]).toBe("L1 (test) unreachable")
      expect(stalled.body.reasons[1]).toMatch(/^network default: finality lag \d+ s \(threshold 60 s\)$/)

      // L1 is back: the batch is anchored and confirmed, health is ok again.
      l1.setHang(false)
      yield* eventually("the second batch submitted", Effect.sync(() => l1.control.accepted.length === 2))
      l1.control.mine()
      l1.control.mine()
      yield* eventually("everything confirmed", Effect.map(status.networks, (ns) => ns.every((n) => n.unconfirmedBatches === 0)))
      const back = yield* get(port, "/ready")
      expect(back.status).toBe(200)
      expect(back.body.reasons).toEqual([])
    }).pipe(Effect.scoped), l1.layer)
  }, 60_000)

  test("a message unbatched past HEALTH_BATCH_LAG_SECONDS degrades the node", () =>
    scenario({ healthBatchLagMillis: 30_000 }, Effect.gen(function*() {
      const status = yield* NodeStatus
      const a = yield* peer()
      const b = yield* peer()
      yield* a.register()
      yield* b.register()
      expect((yield* status.health).status).toBe("ok")
      expect((yield* a.sendTo(b.key)).type).toBe("message_sent")
      // (batching waits a day in these scenarios)
      yield* TestClock.adjust(29_000)
      expect((yield* status.health).reasons).toEqual([])
      yield* TestClock.adjust(2_000)
      const h = yield* status.health
      expect(h.status).toBe("degraded")
      expect(h.reasons).toEqual(["network default: batch lag 31 s (threshold 30 s)"])
    })))
})
