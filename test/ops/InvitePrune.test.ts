/**
 * Expired invite records are deleted by the node's supervised sweep on the Clock: a scenario on
 * TestClock over a real InviteStore on PGlite.
 */
import { expect, test } from "bun:test"
import { Effect, Layer, TestClock, TestContext } from "effect"
import * as InvitePrune from "../../src/ops/InvitePrune.ts"
import { InviteStore } from "../../src/storage/InviteStore.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as SqlInviteStore from "../../src/storage/SqlInviteStore.ts"
import { pgliteLayer } from "../support/TestDatabase.ts"

const invite = (n: number, expiresAt: number) => ({
  l2psUid: "net",
  inviteId: n.toString(16).padStart(32, "0"),
  account: "a".repeat(64),
  record: "r",
  signature: "5".repeat(128),
  expiresAt,
  oneTime: false
})

test("the sweep deletes records once they expire, every PRUNE_INTERVAL_MILLIS of the Clock, and keeps the others", () =>
  Effect.gen(function*() {
    const store = yield* InviteStore
    const count = Effect.map(
      Effect.all([1, 2].map((n) => store.fetch("net", invite(n, 0).inviteId, 0))),
      (found) => found.filter((f) => f !== undefined).length
    )
    yield* store.store(invite(1, 90_000), 0, 5)
    yield* store.store(invite(2, 10 * 60_000), 0, 5)
    // The sweep starts with the layer, at time 0: nothing is expired yet.
    yield* Effect.scoped(Layer.build(InvitePrune.layer).pipe(Effect.zipRight(Effect.gen(function*() {
      yield* TestClock.adjust(InvitePrune.PRUNE_INTERVAL_MILLIS)
      expect(yield* count).toBe(2)
      // At 120 s the first has expired (90 s) and the sweep due then removes it; the fetch at time 0
      // would still see it were it there.
      yield* TestClock.adjust(InvitePrune.PRUNE_INTERVAL_MILLIS)
      let n = yield* count
      for (let i = 0; i < 100 && n !== 1; i++) {
        yield* Effect.sleep(0)
        n = yield* count
      }
      expect(n).toBe(1)
      expect(yield* store.fetch("net", invite(2, 0).inviteId, 0)).toBeDefined()
    }))))
  }).pipe(
    Effect.provide(SqlInviteStore.layer.pipe(Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(pgliteLayer()))))),
    Effect.provide(TestContext.TestContext),
    Effect.runPromise
  ) as Promise<void>, 30_000)

