import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import pkg from "../../package.json" with { type: "json" }
import { NodeKey } from "../crypto/NodeKey.ts"
import { PipelineStore } from "../l2ps/PipelineStore.ts"
import { NodeConfig } from "../config/NodeConfig.ts"
import { Sessions } from "../relay/Sessions.ts"
import { Storage } from "../storage/Storage.ts"
import * as Metrics from "../internal/Metrics.ts"

export const VERSION: string = pkg.version

/** `GET /health` and `GET /metrics` (Prometheus text) on ADMIN_PORT; started by `bun run node` only. */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    if (cfg.adminPort === 0) return
    const storage = yield* Storage
    const pipeline = yield* PipelineStore
    const sessions = yield* Sessions
    const key = yield* NodeKey
    const startedAt = yield* Clock.currentTimeMillis
    const runtime = yield* Effect.runtime<never>()
    yield* Metrics.touch
    const run = Runtime.runPromise(runtime)

    const health = Effect.gen(function*() {
      const db = yield* Effect.either(storage.ping)
      const now = yield* Clock.currentTimeMillis
      const body = {
        status: Either.isRight(db) ? "ok" : "degraded",
        version: VERSION,
        nodeKey: key.publicKeyHex.slice(0, 64),
        uptimeSeconds: Math.floor((now - startedAt) / 1000),
        storage: Either.isRight(db) ? "ok" : "unreachable",
        sessions: yield* sessions.count
      }
      return Response.json(body, { status: Either.isRight(db) ? 200 : 503 })
    })

    const metrics = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const stats = yield* Effect.orElseSucceed(pipeline.stats, () => [])
      const samples: Array<Metrics.Sample> = stats.flatMap((s) => [
        ["im_queued_messages", "Messages waiting for their recipient", { l2ps_uid: s.l2psUid }, s.queued],
        ["im_mempool_messages", "Messages not yet batched", { l2ps_uid: s.l2psUid }, s.pending],
        ["im_batch_lag_seconds", "Age of the oldest message not yet batched", { l2ps_uid: s.l2psUid }, s.oldestPending === null ? 0 : Math.max(0, now - s.oldestPending) / 1000],
        ["im_unconfirmed_batches", "Batches not yet final on L1", { l2ps_uid: s.l2psUid }, s.unconfirmedBatches],
        ["im_finality_lag_seconds", "Age of the oldest batch not yet final", { l2ps_uid: s.l2psUid }, s.oldestUnconfirmed === null ? 0 : Math.max(0, now - s.oldestUnconfirmed) / 1000]
      ] as const)
      const text = yield* Metrics.render(samples)
      return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } })
    })

    const server = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.serve({
          hostname: cfg.host,
          port: cfg.adminPort,
          fetch: (req) => {
            const { pathname } = new URL(req.url)
            if (req.method !== "GET") return new Response("Method not allowed", { status: 405 })
            if (pathname === "/health") return run(health)
            if (pathname === "/metrics") return run(metrics)
            return new Response("Not found", { status: 404 })
          }
        })
      ),
      (s) => Effect.sync(() => s.stop(true))
    )
    yield* Effect.logInfo(`admin http://${cfg.host}:${server.port} (/health, /metrics)`)
  })
)
