import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Metrics from "../internal/Metrics.ts"
import { NodeStatus } from "./NodeStatus.ts"

export { VERSION } from "./NodeStatus.ts"

/**
 * `GET /health` and `GET /metrics` (Prometheus text) on ADMIN_PORT; started by `bun run node` only.
 * It reads the node through `NodeStatus` alone, as a host embedding `NodeCore` would.
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    if (cfg.adminPort === 0) return
    const status = yield* NodeStatus
    const runtime = yield* Effect.runtime<never>()
    yield* Metrics.touch
    const run = Runtime.runPromise(runtime)

    const health = Effect.gen(function*() {
      const db = yield* Effect.either(status.storage)
      const now = yield* Clock.currentTimeMillis
      const body = {
        status: Either.isRight(db) ? "ok" : "degraded",
        version: status.version,
        nodeKey: status.nodeKey,
        uptimeSeconds: Math.floor((now - status.startedAt) / 1000),
        storage: Either.isRight(db) ? "ok" : "unreachable",
        sessions: yield* status.sessions
      }
      return Response.json(body, { status: Either.isRight(db) ? 200 : 503 })
    })

    const metrics = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const stats = yield* Effect.orElseSucceed(status.networks, () => [])
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
