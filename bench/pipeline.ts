/**
 * Batching and proving cost per message, against the cost of committing the same messages, measured in
 * the same run. `bun run bench/pipeline.ts [messages] [rounds]`; Postgres when DATABASE_URL is set,
 * in-memory PGlite otherwise.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Redacted } from "effect"
import * as Crypto from "../src/crypto/Crypto.ts"
import * as NodeKey from "../src/crypto/NodeKey.ts"
import { canonicalJson, leafHash, root } from "../src/domain/Merkle.ts"
import { PipelineStore } from "../src/l2ps/PipelineStore.ts"
import { anchorOf } from "../src/l2ps/Prover.ts"
import * as SqlStores from "../src/node/SqlStores.ts"
import * as PgliteClient from "../src/storage/PgliteClient.ts"
import { Storage } from "../src/storage/Storage.ts"

const N = Number(process.argv[2] ?? 5000)
const ROUNDS = Number(process.argv[3] ?? 5)
const BATCH = 500
const url = process.env["DATABASE_URL"]

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const client = url === undefined ? PgliteClient.layer({}) : PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })
// The node's one storage layer: migrated as the node migrates, before any store is built.
const layer = SqlStores.layer.pipe(Layer.provideMerge(client))

const program = Effect.gen(function*() {
  const storage = yield* Storage
  const store = yield* PipelineStore
  const crypto = Crypto.makeNative()
  const key = NodeKey.fromSeed(new Uint8Array(32).fill(1))
  const commitUs: Array<number> = []
  const proveUs: Array<number> = []
  const cpuUs: Array<number> = []
  for (let round = 0; round < ROUNDS; round++) {
    const uid = `bench-${round}-${performance.now()}`
    const messages = Array.from({ length: N }, (_, i) => ({
      message: {
        l2psUid: uid,
        from: "a".repeat(64),
        to: "b".repeat(64),
        messageHash: `${uid}-${i}`,
        encryptedJson: JSON.stringify({ ciphertext: Buffer.alloc(300, i % 256).toString("base64"), nonce: "bm9uY2Vub25jZQ==" }),
        timestamp: i,
        deliveryStatus: "delivered" as const,
        awaitingAck: false,
        outcome: "sent" as const
      },
      pairLimit: 200
    }))
    let t = performance.now()
    for (let i = 0; i < N; i += BATCH) yield* storage.commit(messages.slice(i, i + BATCH))
    commitUs.push(((performance.now() - t) * 1000) / N)

    t = performance.now()
    let cpu = 0
    let seq = 0
    let prev = "0".repeat(64)
    while (true) {
      const entries = yield* store.takePending(uid, undefined, BATCH)
      if (entries.length === 0) break
      const c = performance.now()
      const leaves = entries.map(leafHash)
      const header = { l2psUid: uid, seq: ++seq, root: root(leaves), size: entries.length, prevBatchHash: prev, createdAt: 0 }
      const batchHash = Buffer.from(crypto.sha256(new TextEncoder().encode(canonicalJson(header)))).toString("hex")
      const signature = Buffer.from(key.sign(Buffer.from(batchHash, "hex"))).toString("hex")
      const { createdAt: _, ...anchored } = header
      const tx = anchorOf(crypto, { ...anchored, batchHash, signature, signer: key.publicKeyHex })
      cpu += performance.now() - c
      yield* store.saveBatch({ ...header, batchHash, signature, l2psTxHash: tx.hash }, entries.map((e) => e.id), leaves)
      prev = batchHash
    }
    proveUs.push(((performance.now() - t) * 1000) / N)
    cpuUs.push((cpu * 1000) / N)
  }
  const c = median(commitUs)
  const p = median(proveUs)
  console.log(`storage: ${url === undefined ? "pglite (in memory)" : "postgres"}; ${N} messages x ${ROUNDS} rounds, batches of ${BATCH}`)
  console.log(`commit (baseline, group commit of ${BATCH}):   median ${c.toFixed(1)} us/msg`)
  console.log(`batch + prove + persist:                      median ${p.toFixed(1)} us/msg  (${(p / c).toFixed(2)}x commit)`)
  console.log(`  of which hashing, Merkle root and ML-DSA-65 signature: median ${median(cpuUs).toFixed(1)} us/msg`)
})

Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped) as Effect.Effect<void>)
