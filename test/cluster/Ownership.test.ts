import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as NodeIdentity from "../../src/config/NodeIdentity.ts"
import { type Fence, Ownership, type OwnershipShape } from "../../src/internal/Ownership.ts"
import { type NewBatch, PipelineStore, type PipelineStoreShape } from "../../src/l2ps/PipelineStore.ts"
import * as SqlPipelineStore from "../../src/l2ps/SqlPipelineStore.ts"
import * as BunPgClient from "../../src/storage/BunPgClient.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import * as PgOwnership from "../../src/storage/PgOwnership.ts"

const base = process.env["TEST_DATABASE_URL"]
const dbName = `im_cluster_${crypto.randomUUID().replaceAll("-", "")}`
const urlOf = (db: string) => {
  const u = new URL(base!)
  u.pathname = `/${db}`
  return u.toString()
}
const admin = (text: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.make({ url: Redacted.make(base!), maxConnections: 1 })
      return yield* sql.unsafe(text)
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
  )

/** One node as far as ownership goes: its own pool on the shared database, its own id. */
interface Member {
  readonly id: string
  readonly ownership: OwnershipShape
  readonly store: PipelineStoreShape
  readonly runs: Array<Fence>
  active: boolean
  /** Ends its ownership (as a node stopping)… */
  readonly stop: () => Promise<void>
  /** …and its pool too. */
  readonly close: () => Promise<void>
}

const member = async (id: string): Promise<Member> => {
  // The pool outlives the ownership, so that a stopped owner's late write is refused by the fence, not by a closed pool.
  const poolScope = Effect.runSync(Scope.make())
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(Layer.buildWithScope(
    SqlPipelineStore.layer.pipe(Layer.provideMerge(BunPgClient.layer({ url: Redacted.make(urlOf(dbName)), maxConnections: 3 }))),
    poolScope
  ))
  const ctx = await Effect.runPromise(Layer.buildWithScope(
    PgOwnership.layer.pipe(Layer.provide(NodeIdentity.layerTest(id)), Layer.provide(Layer.succeedContext(pool))),
    scope
  ))
  const ownership = Context.get(ctx, Ownership)
  const m: Member = {
    id,
    ownership,
    store: Context.get(pool, PipelineStore),
    runs: [],
    active: false,
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void).pipe(Effect.zipRight(Scope.close(poolScope, Exit.void))))
  }
  await Effect.runPromise(
    ownership.runOwned("pipeline/x", (fence) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          m.runs.push(fence!)
          m.active = true
        }),
        () => Effect.sync(() => (m.active = false))
      )).pipe(Scope.extend(scope))
  )
  return m
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms: number) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await ok()) return
    await Bun.sleep(25)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

const batch = (seq: number): NewBatch => ({
  l2psUid: "x",
  seq,
  root: "r".repeat(64),
  size: 0,
  prevBatchHash: "0".repeat(64),
  batchHash: `x-${seq}`.padEnd(64, "h"),
  signature: "s",
  l2psTxHash: `x-${seq}`.padEnd(64, "t"),
  createdAt: 5
})

describe.skipIf(base === undefined)("ownership through Postgres advisory locks (three members)", () => {
  beforeAll(async () => {
    await admin(`CREATE DATABASE ${dbName}`)
    await Effect.runPromise(
      Migrations.run.pipe(Effect.provide(BunPgClient.layer({ url: Redacted.make(urlOf(dbName)), maxConnections: 1 })))
    )
  })
  afterAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  })

  test("one owner at a time; takeover within 5 s when it stops or its connection dies; a stale owner is fenced out", async () => {
    const members = await Promise.all(["n1", "n2", "n3"].map(member))
    const owners = () => members.filter((m) => m.active)
    await until("an owner", () => owners().length === 1, 5000)
    await Bun.sleep(1200) // several polls: still exactly one
    expect(owners().length).toBe(1)
    const first = owners()[0]!
    const firstFence = first.runs[0]!
    expect((await Effect.runPromise(first.ownership.owned)).map((f) => f.name)).toEqual(["pipeline/x"])
    await Effect.runPromise(first.store.saveBatch(batch(1), [], [], firstFence))

    // A graceful stop hands over.
    let t0 = Date.now()
    await first.stop()
    const rest = members.filter((m) => m !== first)
    await until("a second owner", () => rest.filter((m) => m.active).length === 1, 5000)
    const handover = Date.now() - t0
    const second = rest.find((m) => m.active)!
    const secondFence = second.runs[0]!
    expect(secondFence.epoch).toBe(firstFence.epoch + 1)
    // The first owner's term is over: its write is refused where it lands.
    const refused = await Effect.runPromise(first.store.saveBatch(batch(2), [], [], firstFence).pipe(Effect.either))
    expect(refused._tag).toBe("Left")
    await Effect.runPromise(second.store.saveBatch(batch(2), [], [], secondFence))

    // The owner's lock connection dies (as when its machine does): the server frees the lock.
    t0 = Date.now()
    await admin(
      `SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND a.datname = '${dbName}' AND l.classid = ${0x494d17}
         AND l.objid::bigint = (hashtext('pipeline/x')::bigint + 4294967296) % 4294967296`
    )
    const third = rest.find((m) => m !== second)!
    await until("the third takes over", () => third.active, 5000)
    const takeover = Date.now() - t0
    await until("the second notices its loss", () => !second.active, 3000)
    const thirdFence = third.runs[third.runs.length - 1]!
    expect(thirdFence.epoch).toBeGreaterThan(secondFence.epoch)
    const stale = await Effect.runPromise(second.store.saveBatch(batch(3), [], [], secondFence).pipe(Effect.either))
    expect(stale._tag).toBe("Left")
    expect(String(stale._tag === "Left" ? stale.left.cause : "")).toContain("fenced out")
    await Effect.runPromise(third.store.saveBatch(batch(3), [], [], thirdFence))
    const seqs = await Effect.runPromise(third.store.recentBatches("x", 10))
    expect(seqs.map((b) => b.seq).sort()).toEqual([1, 2, 3])
    console.log(`handover after a stop: ${handover} ms; takeover after a dead connection: ${takeover} ms`)
    expect(handover).toBeLessThan(5000)
    expect(takeover).toBeLessThan(5000)
    await Promise.all(members.map((m) => m.close()))
  }, 40_000)

  test("a node's heartbeat row advances; a second process with the same NODE_ID owns nothing while the first lives", async () => {
    const first = await member("d1")
    await until("d1 owns", () => first.active, 5000)
    const twin = await member("d1")
    const beat = async () =>
      Number((await Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ heartbeat_at: string }>`SELECT heartbeat_at::text FROM cluster_nodes WHERE node_id = 'd1'`
      }).pipe(Effect.provide(BunPgClient.layer({ url: Redacted.make(urlOf(dbName)), maxConnections: 1 })))))[0]?.heartbeat_at)
    const b1 = await beat()
    await Bun.sleep(2600)
    expect(await beat()).toBeGreaterThan(b1)
    expect(twin.active).toBe(false)
    expect(twin.runs).toEqual([])
    expect(await Effect.runPromise(twin.ownership.healthy)).toBe(false)
    expect(await Effect.runPromise(first.ownership.healthy)).toBe(true)
    // The first gone, the name is free again.
    await first.close()
    await until("the twin takes over under the freed name", () => twin.active, 5000)
    await twin.close()
  }, 30_000)
})
