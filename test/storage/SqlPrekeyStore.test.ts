import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as Migrations from "../../src/storage/Migrations.ts"
import { PrekeyStore, type PrekeyUpload } from "../../src/storage/PrekeyStore.ts"
import * as SqlPrekeyStore from "../../src/storage/SqlPrekeyStore.ts"
import type { SignedPreKey } from "../../src/domain/Prekeys.ts"
import { databases } from "../support/TestDatabase.ts"

const A = "a".repeat(64)
const B = "b".repeat(64)

/** A key of `bytes` whose hex spells its id: the store keeps bytes, so what comes back proves the round trip. */
const key = (keyId: number, bytes: number, tag = 0): SignedPreKey => ({
  keyId,
  publicKey: (tag.toString(16).padStart(4, "0") + keyId.toString(16).padStart(8, "0")).padEnd(2 * bytes, "e"),
  signature: keyId.toString(16).padStart(8, "0").padEnd(128, "5")
})
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i)

const upload = (over: Partial<PrekeyUpload> = {}): PrekeyUpload => ({
  l2psUid: "net",
  account: A,
  deviceId: 1,
  registrationId: 7,
  signedPreKey: key(1, 32),
  lastResortKem: key(1, 1184),
  oneTimePreKeys: [],
  oneTimeKems: [],
  at: 1000,
  maxDevices: 3,
  maxPerKind: 200,
  ...over
})

for (const db of await databases()) {
  const run = <X, E>(body: Effect.Effect<X, E, PrekeyStore | SqlClient.SqlClient>) =>
    Effect.runPromise(
      body.pipe(
        Effect.provide(SqlPrekeyStore.layer.pipe(
          Layer.provideMerge(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(db.layer)))
        ))
      ) as Effect.Effect<X, E>
    )

  describe(`SqlPrekeyStore on ${db.name}`, () => {
    test("publish, count, claim: bytes round-trip, one-time keys oldest first and gone once served, then the last-resort key alone", () =>
      run(Effect.gen(function*() {
        const s = yield* PrekeyStore
        const r = yield* s.publish(upload({ oneTimePreKeys: range(10, 2).map((i) => key(i, 32)), oneTimeKems: [key(5, 1184)] }))
        expect(r).toEqual({ _tag: "Published", oneTimePreKeys: 2, oneTimeKems: 1 })
        expect(yield* s.counts({ l2psUid: "net", account: A, deviceId: 1 })).toEqual({ oneTimePreKeys: 2, oneTimeKems: 1 })
        expect(yield* s.counts({ l2psUid: "net", account: A, deviceId: 2 })).toBeUndefined()
        expect(yield* s.counts({ l2psUid: "other", account: A, deviceId: 1 })).toBeUndefined()

        const [first] = yield* s.claim("net", A)
        expect(first).toEqual({
          deviceId: 1,
          registrationId: 7,
          signedPreKey: key(1, 32),
          lastResortKem: key(1, 1184),
          oneTimePreKey: key(10, 32),
          oneTimeKem: key(5, 1184)
        })
        const [second] = yield* s.claim("net", A)
        expect(second!.oneTimePreKey).toEqual(key(11, 32))
        expect(second!.oneTimeKem).toBeUndefined()
        const [third] = yield* s.claim("net", A)
        expect(third!.oneTimePreKey).toBeUndefined()
        expect(third!.lastResortKem).toEqual(key(1, 1184))
        expect(yield* s.counts({ l2psUid: "net", account: A, deviceId: 1 })).toEqual({ oneTimePreKeys: 0, oneTimeKems: 0 })
        // another account, another network: nothing
        expect(yield* s.claim("net", B)).toEqual([])
        expect(yield* s.claim("other", A)).toEqual([])
      })))

    test("a later publish replaces the signed keys and adds to the pools; a key id sent again replaces its key", () =>
      run(Effect.gen(function*() {
        const s = yield* PrekeyStore
        yield* s.publish(upload({ oneTimePreKeys: [key(1, 32), key(2, 32)] }))
        const r = yield* s.publish(upload({
          signedPreKey: key(2, 32, 9),
          lastResortKem: undefined,
          oneTimePreKeys: [key(2, 32, 3), key(3, 32)],
          at: 2000
        }))
        expect(r).toEqual({ _tag: "Published", oneTimePreKeys: 3, oneTimeKems: 0 })
        const claims = [yield* s.claim("net", A), yield* s.claim("net", A), yield* s.claim("net", A)].map((c) => c[0]!)
        expect(claims.map((c) => c.oneTimePreKey)).toEqual([key(1, 32), key(2, 32, 3), key(3, 32)])
        expect(claims[0]!.signedPreKey).toEqual(key(2, 32, 9))
        expect(claims[0]!.lastResortKem).toEqual(key(1, 1184))
        expect((yield* s.devices("net", A))[0]).toEqual({ deviceId: 1, registrationId: 7, oneTimePreKeys: 0, oneTimeKems: 0, updatedAt: 2000 })
      })))

    test("a new registration id drops the old installation's one-time keys and needs both signed keys", () =>
      run(Effect.gen(function*() {
        const s = yield* PrekeyStore
        yield* s.publish(upload({ oneTimePreKeys: [key(1, 32)], oneTimeKems: [key(1, 1184)] }))
        expect(yield* s.publish(upload({ registrationId: 8, lastResortKem: undefined }))).toEqual({ _tag: "SignedKeysMissing" })
        expect(yield* s.publish(upload({ deviceId: 2, signedPreKey: undefined }))).toEqual({ _tag: "SignedKeysMissing" })
        expect(yield* s.counts({ l2psUid: "net", account: A, deviceId: 1 })).toEqual({ oneTimePreKeys: 1, oneTimeKems: 1 })
        expect(yield* s.publish(upload({ registrationId: 8, oneTimePreKeys: [key(5, 32)] }))).toEqual({ _tag: "Published", oneTimePreKeys: 1, oneTimeKems: 0 })
        const [b] = yield* s.claim("net", A)
        expect(b).toMatchObject({ registrationId: 8, oneTimePreKey: key(5, 32) })
        expect(b!.oneTimeKem).toBeUndefined()
      })))

    test("pools and devices are bounded: past them nothing of the publish is stored", () =>
      run(Effect.gen(function*() {
        const s = yield* PrekeyStore
        const opks = (from: number, n: number) => range(from, n).map((i) => key(i, 32))
        expect(yield* s.publish(upload({ oneTimePreKeys: opks(0, 150), maxPerKind: 200 }))).toMatchObject({ _tag: "Published", oneTimePreKeys: 150 })
        expect(yield* s.publish(upload({ signedPreKey: key(9, 32), oneTimePreKeys: opks(150, 51), maxPerKind: 200 })))
          .toEqual({ _tag: "PoolFull", kind: "opk", limit: 200 })
        // rolled back whole: the pool and the signed key as they were
        expect(yield* s.counts({ l2psUid: "net", account: A, deviceId: 1 })).toEqual({ oneTimePreKeys: 150, oneTimeKems: 0 })
        expect((yield* s.claim("net", A))[0]!.signedPreKey).toEqual(key(1, 32))
        // exactly to the bound is fine (149 left after the claim, + 51 = 200)
        expect(yield* s.publish(upload({ oneTimePreKeys: opks(150, 51), maxPerKind: 200 }))).toMatchObject({ _tag: "Published", oneTimePreKeys: 200 })
        const kems = range(0, 3).map((i) => key(i, 1184))
        expect(yield* s.publish(upload({ account: B, oneTimeKems: kems, maxPerKind: 2 }))).toEqual({ _tag: "PoolFull", kind: "okem", limit: 2 })

        yield* s.publish(upload({ deviceId: 2 }))
        yield* s.publish(upload({ deviceId: 3 }))
        expect(yield* s.publish(upload({ deviceId: 4 }))).toEqual({ _tag: "DeviceLimit", limit: 3 })
        // an existing device still publishes; another account has its own bound
        expect(yield* s.publish(upload({ deviceId: 3, oneTimePreKeys: opks(0, 1) }))).toMatchObject({ _tag: "Published" })
        expect(yield* s.publish(upload({ account: B, deviceId: 4 }))).toMatchObject({ _tag: "Published" })
        expect((yield* s.devices("net", A)).map((d) => d.deviceId)).toEqual([1, 2, 3])
        // removing one makes room; its pools go with it
        expect(yield* s.remove({ l2psUid: "net", account: A, deviceId: 1 })).toBe(true)
        expect(yield* s.remove({ l2psUid: "net", account: A, deviceId: 1 })).toBe(false)
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM prekey_one_time WHERE device_id = 1`
        expect(Number(row?.n)).toBe(0)
        expect(yield* s.publish(upload({ deviceId: 4 }))).toMatchObject({ _tag: "Published" })
        expect((yield* s.claim("net", A)).map((b) => b.deviceId)).toEqual([2, 3, 4])
      })))

    test("100 concurrent claims of one device get 100 distinct one-time keys of each kind; then the last-resort key", () =>
      run(Effect.gen(function*() {
        const s = yield* PrekeyStore
        // two devices, so that each claim takes four keys in one statement
        for (const deviceId of [1, 2]) {
          yield* s.publish(upload({ deviceId, oneTimePreKeys: range(0, 100).map((i) => key(i, 32, deviceId)) }))
          yield* s.publish(upload({ deviceId, oneTimeKems: range(0, 50).map((i) => key(i, 1184, deviceId)) }))
          yield* s.publish(upload({ deviceId, oneTimeKems: range(50, 50).map((i) => key(i, 1184, deviceId)) }))
        }
        const claims = yield* Effect.all(range(0, 100).map(() => s.claim("net", A)), { concurrency: "unbounded" })
        for (const deviceId of [1, 2]) {
          const of = claims.map((c) => c.find((b) => b.deviceId === deviceId)!)
          const opks = of.map((b) => b.oneTimePreKey?.publicKey)
          const kems = of.map((b) => b.oneTimeKem?.publicKey)
          expect(opks.every((k) => k !== undefined)).toBe(true)
          expect(kems.every((k) => k !== undefined)).toBe(true)
          expect(new Set(opks).size).toBe(100)
          expect(new Set(kems).size).toBe(100)
        }
        const after = yield* Effect.all(range(0, 5).map(() => s.claim("net", A)), { concurrency: "unbounded" })
        for (const b of after.flat()) {
          expect(b.oneTimePreKey).toBeUndefined()
          expect(b.oneTimeKem).toBeUndefined()
          expect(b.lastResortKem).toEqual(key(1, 1184))
        }
      })), 30_000)
  })
}
