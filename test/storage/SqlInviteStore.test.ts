import { describe, expect, test } from "bun:test"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as Migrations from "../../src/storage/Migrations.ts"
import { type Invite, InviteStore } from "../../src/storage/InviteStore.ts"
import * as SqlInviteStore from "../../src/storage/SqlInviteStore.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)
const NOW = 1_000_000

const invite = (n: number, over: Partial<Invite> = {}): Invite => ({
  l2psUid: "net",
  inviteId: n.toString(16).padStart(32, "0"),
  account: A,
  record: `record-${n}`,
  signature: n.toString(16).padStart(128, "5"),
  expiresAt: NOW + 60_000,
  oneTime: false,
  ...over
})

for (const db of await databases()) {
  const run = <X, E>(body: Effect.Effect<X, E, InviteStore | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(SqlInviteStore.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<X, E>
    )

  describe(`SqlInviteStore on ${db.name}`, () => {
    test("a reusable record is served until it expires; the id is unique per network; delete is the owner's", () =>
      run(Effect.gen(function*() {
        const s = yield* InviteStore
        expect(yield* s.store(invite(1), NOW, 5)).toEqual({ _tag: "Stored", invites: 1 })
        expect(yield* s.fetch("net", invite(1).inviteId, NOW)).toEqual(invite(1))
        expect(yield* s.fetch("net", invite(1).inviteId, NOW + 1)).toEqual(invite(1))
        expect(yield* s.fetch("other", invite(1).inviteId, NOW)).toBeUndefined()
        expect(yield* s.fetch("net", invite(1).inviteId, NOW + 60_000)).toBeUndefined()
        // Someone holding the link cannot replace the record under the same id.
        expect(yield* s.store(invite(1, { account: B, record: "forged" }), NOW, 5)).toEqual({ _tag: "Taken" })
        expect((yield* s.fetch("net", invite(1).inviteId, NOW))!.record).toBe("record-1")
        expect(yield* s.remove("net", B, invite(1).inviteId)).toBe(false)
        expect(yield* s.remove("net", A, invite(1).inviteId)).toBe(true)
        expect(yield* s.fetch("net", invite(1).inviteId, NOW)).toBeUndefined()
      })))

    test("at most `limit` unexpired records per account and network; expired ones do not count and are pruned", () =>
      run(Effect.gen(function*() {
        const s = yield* InviteStore
        expect(yield* s.store(invite(10, { expiresAt: NOW + 10 }), NOW, 3)).toEqual({ _tag: "Stored", invites: 1 })
        expect(yield* s.store(invite(11), NOW, 3)).toEqual({ _tag: "Stored", invites: 2 })
        expect(yield* s.store(invite(12), NOW, 3)).toEqual({ _tag: "Stored", invites: 3 })
        expect(yield* s.store(invite(13), NOW, 3)).toEqual({ _tag: "Limit", limit: 3 })
        expect(yield* s.store(invite(13, { account: B }), NOW, 3)).toEqual({ _tag: "Stored", invites: 1 })
        expect(yield* s.store(invite(14, { l2psUid: "other" }), NOW, 3)).toEqual({ _tag: "Stored", invites: 1 })
        // Once the first has expired, there is room again.
        expect(yield* s.store(invite(15), NOW + 10, 3)).toEqual({ _tag: "Stored", invites: 3 })
        expect(yield* s.prune(NOW + 10)).toBe(1)
        expect(yield* s.prune(NOW + 10)).toBe(0)
        expect(yield* s.prune(NOW + 60_000)).toBe(5)
        expect(yield* s.fetch("net", invite(11).inviteId, NOW)).toBeUndefined()
      })))

    test("20 concurrent fetches of a one-time record: exactly one gets it, then it is gone", () =>
      run(Effect.gen(function*() {
        const s = yield* InviteStore
        for (let round = 0; round < 3; round++) {
          const one = invite(100 + round, { oneTime: true })
          yield* s.store(one, NOW, 5)
          const got = yield* Effect.all(Array.from({ length: 20 }, () => s.fetch("net", one.inviteId, NOW)), { concurrency: "unbounded" })
          expect(got.filter((g) => g !== undefined)).toEqual([one])
          expect(yield* s.fetch("net", one.inviteId, NOW)).toBeUndefined()
        }
        // The one-time records are gone from the count too.
        expect(yield* s.store(invite(200), NOW, 1)).toEqual({ _tag: "Stored", invites: 1 })
      })))
  })
}
