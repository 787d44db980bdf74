/**
 * The embedded L1 writes blocks only while something waits for one: none on an idle node, a block for
 * a submitted transaction and then `finalityDepth` more, so that its batch can be confirmed; after a
 * restart it still owes the blocks it had not made. On the TestClock, on PGlite and Postgres.
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect, Layer, Option, type Scope, TestClock, TestContext } from "effect"
import * as Crypto from "../../src/crypto/Crypto.ts"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import { L1 } from "../../src/l1/L1.ts"
import * as LocalL1 from "../../src/l1/LocalL1.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import { sleepingUntil } from "../support/PipelineSignals.ts"
import { databases } from "../support/TestDatabase.ts"

const BLOCK = 1000
const DEPTH = 2

const tx = (hash: string) => ({
  hash,
  payload: {
    type: "l2psBatch" as const,
    l2psUid: "default",
    seq: 1,
    root: "00".repeat(32),
    size: 1,
    prevBatchHash: "00".repeat(32),
    batchHash: hash,
    signature: "00",
    signer: "00"
  }
})

const blockCount = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: number | string }>`SELECT count(*) AS n FROM l1_blocks`, (rows) => Number(rows[0]!.n)))

/**
 * Moves the clock block after block, each time once the L1 sleeps until the next one (it has written
 * what it had to), from the block due at `from` on.
 */
const blocks = (from: number, k: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < k; i++) {
      yield* sleepingUntil(from + i * BLOCK)
      yield* TestClock.adjust(BLOCK)
    }
    yield* sleepingUntil(from + k * BLOCK)
  })

/** The local L1 over a migrated database; the L1 layer itself is built by each scenario (twice for a restart). */
const scenario = (
  db: Layer.Layer<SqlClient.SqlClient, unknown>,
  body: Effect.Effect<void, unknown, SqlClient.SqlClient | NodeConfig.NodeConfig | Crypto.Crypto | Scope.Scope>
) =>
  Effect.runPromise(
    body.pipe(
      Effect.provide(
        Layer.effectDiscard(Migrations.run).pipe(
          Layer.provideMerge(Layer.mergeAll(Crypto.layerNative, NodeConfig.layer({ blockIntervalMillis: BLOCK, finalityDepth: DEPTH }))),
          Layer.provideMerge(db)
        )
      ),
      Effect.scoped,
      Effect.provide(TestContext.TestContext)
    )
  )

for (const db of await databases()) {
  describe(`local L1 (${db.name})`, () => {
    test("idle: no block at all; a submitted transaction gets its block and exactly finalityDepth more, then none", () =>
      scenario(db.layer, Effect.gen(function*() {
        const t0 = yield* Clock.currentTimeMillis
        const l1 = yield* Effect.provide(L1, yield* Layer.build(LocalL1.layer))
        yield* blocks(t0 + BLOCK, 5)
        expect(yield* blockCount).toBe(0)
        expect(yield* l1.head).toEqual(Option.none())

        yield* l1.submit(tx("a".repeat(64)))
        const t1 = t0 + 6 * BLOCK
        yield* blocks(t1, 1)
        const included = yield* l1.inclusion("a".repeat(64))
        expect(Option.getOrThrow(included).blockNumber).toBe(0)
        // Its batch is confirmed once DEPTH blocks sit on top: they come, one per interval…
        yield* blocks(t1 + BLOCK, DEPTH)
        expect(Option.getOrThrow(yield* l1.head).number).toBe(DEPTH)
        // …and then nothing more while idle.
        yield* blocks(t1 + (1 + DEPTH) * BLOCK, 3)
        expect(yield* blockCount).toBe(1 + DEPTH)

        // A second transaction later: its block links to the last one, and DEPTH more follow.
        yield* l1.submit(tx("b".repeat(64)))
        const t2 = t1 + (4 + DEPTH) * BLOCK
        yield* blocks(t2, 1 + DEPTH + 2)
        expect(Option.getOrThrow(yield* l1.inclusion("b".repeat(64))).blockNumber).toBe(1 + DEPTH)
        expect(Option.getOrThrow(yield* l1.head).number).toBe(1 + 2 * DEPTH)
        expect(yield* blockCount).toBe(2 + 2 * DEPTH)
        const sql = yield* SqlClient.SqlClient
        const chain = yield* sql<{ number: number | string; hash: string; parent_hash: string }>`
          SELECT number, hash, parent_hash FROM l1_blocks ORDER BY number`
        for (let i = 1; i < chain.length; i++) expect(chain[i]!.parent_hash).toBe(chain[i - 1]!.hash)
      })), 30_000)

    test("after a restart the blocks a transaction still waits for are made, and no more", () =>
      scenario(db.layer, Effect.gen(function*() {
        const t0 = yield* Clock.currentTimeMillis
        yield* Effect.scoped(Effect.gen(function*() {
          const l1 = yield* Effect.provide(L1, yield* Layer.build(LocalL1.layer))
          // Its first look (at start) found nothing: it sleeps until the next block.
          yield* blocks(t0 + BLOCK, 0)
          yield* l1.submit(tx("c".repeat(64)))
          yield* blocks(t0 + BLOCK, 1)
        }))
        expect(yield* blockCount).toBe(1)
        const t1 = yield* Clock.currentTimeMillis
        const l1 = yield* Effect.provide(L1, yield* Layer.build(LocalL1.layer))
        yield* blocks(t1 + BLOCK, 4)
        expect(Option.getOrThrow(yield* l1.head).number).toBe(DEPTH)
        expect(yield* blockCount).toBe(1 + DEPTH)
      })), 30_000)
  })
}
