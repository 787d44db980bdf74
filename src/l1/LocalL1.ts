import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { Crypto } from "../crypto/Crypto.ts"
import { canonicalJson } from "../domain/Merkle.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import { L1, L1Error } from "./L1.ts"
import * as Ownership from "../internal/Ownership.ts"
import { supervise } from "../internal/supervise.ts"

const GENESIS_PARENT = "0".repeat(64)
const MAX_TXS_PER_BLOCK = 10_000

/**
 * An embedded chain in the node's own database: a block every `blockIntervalMillis` holding the
 * transactions submitted since, each block hash-linked to its parent. Blocks are made only while
 * something waits for one: a transaction not yet included, or one included fewer than `finalityDepth`
 * blocks ago (its batch needs blocks on top to be confirmed). An idle node writes nothing; an empty
 * block a second was 86,400 rows a day for no one.
 */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const cfg = yield* NodeConfig
  const crypto = yield* Crypto
  const fail = (message: string) => (cause: unknown) => new L1Error({ message, cause })
  const hex = (s: string) => Buffer.from(crypto.sha256(new TextEncoder().encode(s))).toString("hex")

  // Blocks still owed to the last transactions included; after a restart, from the chain itself.
  const [last] = yield* sql<{ head: number | string | null; with_txs: number | string | null }>`
    SELECT (SELECT max(number) FROM l1_blocks) AS head,
      (SELECT number FROM l1_blocks WHERE tx_count > 0 ORDER BY number DESC LIMIT 1) AS with_txs`.pipe(Effect.orDie)
  let owed = last?.with_txs == null ? 0 : Math.max(0, Number(last.with_txs) + cfg.finalityDepth - Number(last.head))

  const produce = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    owed = yield* Effect.gen(function*() {
      const txs = yield* sql<{ tx_hash: string }>`
        SELECT tx_hash FROM l1_transactions WHERE block_number IS NULL ORDER BY seq LIMIT ${MAX_TXS_PER_BLOCK}`
      if (txs.length === 0 && owed === 0) return 0
      const [parent] = yield* sql<{ number: number | string; hash: string }>`
        SELECT number, hash FROM l1_blocks ORDER BY number DESC LIMIT 1`
      const number = parent === undefined ? 0 : Number(parent.number) + 1
      const parentHash = parent?.hash ?? GENESIS_PARENT
      const txHashes = txs.map((t) => t.tx_hash)
      const hash = hex(canonicalJson({ number, parentHash, timestamp: now, txHashes }))
      yield* sql`INSERT INTO l1_blocks ${sql.insert({ number, hash, parent_hash: parentHash, ts: now, tx_count: txHashes.length })}`
      if (txHashes.length > 0) {
        yield* sql`UPDATE l1_transactions SET block_number = ${number} WHERE tx_hash IN ${sql.in(txHashes)}`
      }
      return txHashes.length > 0 ? cfg.finalityDepth : owed - 1
    }).pipe(sql.withTransaction)
  })

  // Nodes sharing the database share the chain: one of them produces its blocks.
  const ownership = yield* Ownership.current
  yield* ownership.runOwned("l1/blocks", () =>
    supervise(
      "local-l1",
      produce.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("local L1 block production failed", cause)),
        Effect.repeat(Schedule.spaced(cfg.blockIntervalMillis))
      )
    ))

  return L1.of({
    name: "local",
    submit: (tx) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        sql`INSERT INTO l1_transactions (tx_hash, payload, submitted_at)
          VALUES (${tx.hash}, ${JSON.stringify(tx.payload)}::text::jsonb, ${now})
          ON CONFLICT (tx_hash) DO NOTHING`).pipe(Effect.asVoid, Effect.mapError(fail("submit failed"))),
    inclusion: (txHash) =>
      sql<{ number: number | string; hash: string }>`
        SELECT b.number, b.hash FROM l1_transactions t JOIN l1_blocks b ON b.number = t.block_number
        WHERE t.tx_hash = ${txHash}`.pipe(
        Effect.map((rows) =>
          Option.map(Option.fromNullable(rows[0]), (r) => ({ blockNumber: Number(r.number), blockHash: r.hash }))
        ),
        Effect.mapError(fail("inclusion query failed"))
      ),
    head: sql<{ number: number | string; hash: string }>`SELECT number, hash FROM l1_blocks ORDER BY number DESC LIMIT 1`
      .pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => ({ number: Number(r.number), hash: r.hash }))),
        Effect.mapError(fail("head query failed"))
      )
  })
})

export const layer = Layer.scoped(L1, make)
