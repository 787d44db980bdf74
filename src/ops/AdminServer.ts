import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import { createHash, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { NodeConfig } from "../config/NodeConfig.ts"
import * as Metrics from "../internal/Metrics.ts"
import { NodeStatus } from "./NodeStatus.ts"

export { VERSION } from "./NodeStatus.ts"

/** Bodies of the admin's POSTs are a key and a reason: anything larger is refused by the server. */
const MAX_BODY_BYTES = 16 * 1024
const MAX_SESSIONS_LISTED = 10_000
/** A message hash is at most 256 characters, a network uid 64. */
const MAX_SEGMENT = 256
const decoded = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}
/** What changes the node: POST only, so that no link or prefetch can. */
const POSTS = new Set(["/api/kick", "/api/ban", "/api/unban"])

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" } })

const digest = (s: string) => createHash("sha256").update(s).digest()

/** The token a request offers: `Bearer <token>`, or a browser's `Basic` login with the token as password. */
const offered = (header: string): string => {
  if (header.startsWith("Bearer ")) return header.slice(7)
  if (!header.startsWith("Basic ")) return ""
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon < 0 ? "" : decoded.slice(colon + 1)
}

/**
 * Whether the request carries the token, in constant time: both sides are hashed first, so the
 * comparison takes as long whatever the length or the content of what was sent.
 */
export const authorized = (token: Option.Option<Redacted.Redacted>) => {
  if (Option.isNone(token)) return () => true
  const expected = digest(Redacted.value(token.value))
  return (req: Request) => {
    const sent = offered(req.headers.get("authorization") ?? "")
    return timingSafeEqual(digest(sent), expected) && sent.length > 0
  }
}

const isLoopback = (host: string) => host === "127.0.0.1" || host === "::1" || host === "localhost"

/**
 * The admin port (ADMIN_HOST:ADMIN_PORT): `/health` and `/ready`, `/metrics` (Prometheus text), the
 * status page at `/` and its JSON API under `/api/`. With ADMIN_TOKEN set, all but `/health` need it as
 * a bearer token. Started by `bun run node`; it reads the node through `NodeStatus` alone, as a host
 * embedding `NodeCore` would.
 */
export const layer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    if (cfg.adminPort === 0) return
    const status = yield* NodeStatus
    const runtime = yield* Effect.runtime<never>()
    yield* Metrics.touch
    const run = Runtime.runPromise(runtime)
    const page = readFileSync(new URL("./StatusPage.html", import.meta.url), "utf8")
    const allowed = authorized(cfg.adminToken)

    const health = Effect.gen(function*() {
      const h = yield* status.health
      const now = yield* Clock.currentTimeMillis
      // Liveness: the process answers. What is wrong is said, but does not get it restarted.
      return json({
        ...h,
        version: status.version,
        nodeKey: status.nodeKey,
        uptimeSeconds: Math.floor((now - status.startedAt) / 1000),
        sessions: yield* status.sessions
      })
    })

    // The node's stores are built after its migrations: a NodeStatus exists only once they ran.
    const ready = Effect.map(status.health, (h) => json({ ...h, ready: h.status === "ok", migrations: "done" }, h.status === "ok" ? 200 : 503))

    const metrics = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const stats = yield* Effect.orElseSucceed(status.networks, () => [])
      // Each family's series together, as the text format wants them: by metric, then by network.
      const samples: Array<Metrics.Sample> = stats.flatMap((s) => [
        ["im_queued_messages", "Messages waiting for their recipient", { l2ps_uid: s.l2psUid }, s.queued],
        ["im_mempool_messages", "Messages not yet batched", { l2ps_uid: s.l2psUid }, s.pending],
        ["im_batch_lag_seconds", "Age of the oldest message not yet batched", { l2ps_uid: s.l2psUid }, s.oldestPending === null ? 0 : Math.max(0, now - s.oldestPending) / 1000],
        ["im_unconfirmed_batches", "Batches not yet final on L1", { l2ps_uid: s.l2psUid }, s.unconfirmedBatches],
        ["im_finality_lag_seconds", "Age of the oldest batch not yet final", { l2ps_uid: s.l2psUid }, s.oldestUnconfirmed === null ? 0 : Math.max(0, now - s.oldestUnconfirmed) / 1000]
      ] as const).map((sample, i) => [sample, i % 5] as const).sort((x, y) => x[1] - y[1]).map(([sample]) => sample)
      const text = yield* Metrics.render(samples)
      return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } })
    })

    /** Storage errors answer 503, a refused key 400; neither takes the server down. */
    const answer = <E extends { readonly _tag: string; readonly message?: string }>(effect: Effect.Effect<Response, E>) =>
      effect.pipe(
        Effect.catchAll((e) =>
          Effect.succeed(
            e._tag === "AdminError" ? json({ error: e.message }, 400) : json({ error: "storage unavailable" }, 503)
          )
        ),
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logError("admin request failed", Cause.squash(cause)), json({ error: "internal error" }, 500))
        )
      )

    const body = (req: Request) =>
      Effect.tryPromise({
        try: async () => {
          const text = await req.text()
          const parsed: unknown = text.length === 0 ? {} : JSON.parse(text)
          return typeof parsed === "object" && parsed !== null ? parsed as Record<string, unknown> : {}
        },
        catch: () => ({ _tag: "AdminError" as const, message: "the body must be a JSON object" })
      })
    const keyOf = (b: Record<string, unknown>) =>
      typeof b["key"] === "string" ? Effect.succeed(b["key"]) : Effect.fail({ _tag: "AdminError" as const, message: "missing key" })

    const post = (pathname: string, req: Request) =>
      Effect.gen(function*() {
        const b = yield* body(req)
        const key = yield* keyOf(b)
        switch (pathname) {
          case "/api/kick":
            return json(yield* status.admin.kick(key))
          case "/api/ban":
            return json(yield* status.admin.ban(key, typeof b["reason"] === "string" ? b["reason"] : ""))
          case "/api/unban":
            return json(yield* status.admin.unban(key))
        }
        return json({ error: "not found" }, 404)
      })

    const get = (url: URL) =>
      Effect.gen(function*() {
        const parts = url.pathname.split("/").filter((p) => p.length > 0).map(decoded)
        if (parts.some((p) => p === undefined || p.length > MAX_SEGMENT)) return json({ error: "malformed path" }, 400)
        switch (url.pathname) {
          case "/":
            return new Response(page, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } })
          case "/ready":
            return yield* ready
          case "/metrics":
            return yield* metrics
          case "/api/status":
            return json(yield* status.snapshot)
          case "/api/networks": {
            const snapshot = yield* status.snapshot
            return json(snapshot.networks.map(({ batches: _, ...n }) => ({ ...n, limits: cfg.networks.get(n.l2psUid) ?? null })))
          }
          case "/api/sessions": {
            const network = url.searchParams.get("network") ?? undefined
            const limit = Math.min(MAX_SESSIONS_LISTED, Math.max(1, Number(url.searchParams.get("limit") ?? 1000) || 1000))
            return json(yield* status.sessionList(network, limit))
          }
          case "/api/bans":
            return json(yield* status.admin.bans)
          case "/api/nodes": {
            const view = yield* status.cluster
            return view === undefined ? json({ error: "not a cluster member (NATS_URL is not set)" }, 404) : json(view)
          }
        }
        if (parts[0] === "api" && parts[1] === "messages" && parts.length === 3) {
          const found = yield* status.message(parts[2]!)
          return found.length === 0 ? json({ error: "message not found" }, 404) : json(found)
        }
        if (parts[0] === "api" && parts[1] === "batches" && parts.length === 4) {
          const seq = Number(parts[3])
          if (!Number.isSafeInteger(seq) || seq < 0) return json({ error: "seq must be a non-negative integer" }, 400)
          const b = yield* status.batch(parts[2]!, seq)
          return b === undefined ? json({ error: "batch not found" }, 404) : json(b)
        }
        return json({ error: "not found" }, 404)
      })

    const server = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.serve({
          hostname: cfg.adminHost,
          port: cfg.adminPort,
          maxRequestBodySize: MAX_BODY_BYTES,
          fetch: (req) => {
            const url = new URL(req.url)
            if (url.pathname === "/health") {
              return req.method === "GET" ? run(health) : new Response("Method not allowed", { status: 405 })
            }
            if (!allowed(req)) {
              const refused = json({ error: "unauthorized" }, 401)
              // Basic, so that a browser asks for it (any user name, the token as password); a bearer
              // token is taken as well. One challenge only: Bun would join two into one header.
              refused.headers.set("www-authenticate", 'Basic realm="admin", charset="UTF-8"')
              return refused
            }
            if (req.method === "GET") return run(answer(get(url)))
            if (req.method === "POST" && POSTS.has(url.pathname)) return run(answer(post(url.pathname, req)))
            return new Response("Method not allowed", { status: 405 })
          }
        })
      ),
      (s) => Effect.sync(() => s.stop(true))
    )
    if (!isLoopback(cfg.adminHost) && Option.isNone(cfg.adminToken)) {
      yield* Effect.logWarning(`the admin port listens on ${cfg.adminHost} without ADMIN_TOKEN: anyone who reaches it can ban keys and close sessions`)
    }
    yield* Effect.logInfo(`admin http://${cfg.adminHost}:${server.port} (/, /api, /health, /ready, /metrics)`)
  })
)
