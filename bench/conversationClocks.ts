/**
 * What the conversation clock rows cost a group commit, against the same commits without them, in the
 * same run: `DATABASE_URL=… bun run bench/conversationClocks.ts [--batch 200] [--conversations 100]
 * [--commits 50] [--rounds 5] [--before <tree>]`. Each round commits, one variant after the other on
 * one throwaway Postgres database, `--commits` group commits of `--batch` live messages spread over
 * `--conversations` conversations, two commits in flight as the node's committer keeps them, the
 * variants rotated from round to round:
 * `alone` (one node: its own clock), `clustered` (NATS_URL set: the rows locked in the commit), and
 * with `--before <tree>` the SqlStorage of another checkout (e.g. `git archive main` unpacked), alone.
 * Prints the median µs per message of each variant and its ratio to `alone`.
 */
import { Effect } from "effect"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Redacted from "effect/Redacted"
import * as BunPgClient from "../src/storage/BunPgClient.ts"
import * as Migrations from "../src/storage/Migrations.ts"
import * as SqlStorage from "../src/storage/SqlStorage.ts"
import type { CommitRequest, StorageShape } from "../src/storage/Storage.ts"
import { createDatabase } from "./Targets.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const BATCH = arg("batch", 200)
const CONVERSATIONS = arg("conversations", 100)
const COMMITS = arg("commits", 50)
const ROUNDS = arg("rounds", 5)
const beforeAt = process.argv.indexOf("--before")
const beforeTree = beforeAt < 0 ? undefined : process.argv[beforeAt + 1]
const adminUrl = process.env["DATABASE_URL"]
if (adminUrl === undefined) throw new Error("DATABASE_URL must name a Postgres server (the clock rows are for shared databases)")

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const key = (n: number) => n.toString(16).padStart(64, "0")
const payload = JSON.stringify({ ciphertext: "x".repeat(344), nonce: "bm9uY2Vub25jZW5vbmNl", ephemeralKey: key(7) })

let seq = 0
const batchOf = (uid: string): Array<CommitRequest> =>
  Array.from({ length: BATCH }, (_, i) => {
    const pair = i % CONVERSATIONS
    return {
      message: {
        l2psUid: uid,
        from: key(2 * pair + 1),
        to: key(2 * pair + 2),
        messageHash: `h${++seq}`,
        encryptedJson: payload,
        timestamp: Date.now(),
        deliveryStatus: "delivered",
        awaitingAck: false,
        outcome: "sent"
      },
      pairLimit: 1000
    }
  })

const db = await createDatabase(adminUrl)
try {
  const program = Effect.gen(function*() {
    yield* Migrations.run
    const variants: Array<[string, StorageShape]> = [
      ["alone", yield* SqlStorage.make()],
      ["clustered", yield* SqlStorage.make({ conversationClocks: true })]
    ]
    if (beforeTree !== undefined) {
      const before = yield* Effect.promise(() => import(`${beforeTree}/src/storage/SqlStorage.ts`))
      variants.push(["before (alone)", yield* (before.make as Effect.Effect<StorageShape, never, SqlClient.SqlClient>)])
    }
    const perMessage = new Map<string, Array<number>>(variants.map(([name]) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with another variant, so none always runs first (or last) in a round.
      for (const [name, storage] of variants.map((_, i) => variants[(i + round) % variants.length]!)) {
        const uid = `${name}-${round}`
        const batches = Array.from({ length: COMMITS }, () => batchOf(uid))
        const started = performance.now()
        yield* Effect.forEach(batches, (b) => storage.commit(b), { concurrency: 2, discard: true })
        perMessage.get(name)!.push(((performance.now() - started) * 1000) / (COMMITS * BATCH))
      }
    }
    const alone = median(perMessage.get("alone")!)
    for (const [name, xs] of perMessage) {
      console.log(`${name}: median ${median(xs).toFixed(1)} µs a message (${(median(xs) / alone).toFixed(2)}x alone); rounds ${xs.map((x) => x.toFixed(1)).join(", ")}`)
    }
  })
  await Effect.runPromise(
    program.pipe(
      Effect.provideServiceEffect(
        SqlClient.SqlClient,
        BunPgClient.make({ url: Redacted.make(db.url), maxConnections: 8 })
      ),
      Effect.provide(Reactivity.layer),
      Effect.scoped
    )
  )
} finally {
  await db.drop()
}
