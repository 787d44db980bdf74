/**
 * Serves the web chat: four fixed answers (the page, its script, its style, its settings), nothing
 * else. The browser talks to the node itself over its WebSocket; this server never sees a key, a
 * passphrase or a message.
 */
import type { PageBundle } from "./PageBundle.ts"
import type { WebConfig } from "./WebConfig.ts"

/**
 * The page runs only its own script and may connect only to this server and to the node; peers'
 * text is set as text, and this keeps it so should a bug ever let markup through.
 */
export const contentSecurityPolicy = (nodeUrl: string): string =>
  [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src data:",
    `connect-src 'self' ${new URL(nodeUrl).origin}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")

export const routes = (page: PageBundle, config: WebConfig): ReadonlyMap<string, { readonly body: string; readonly type: string }> =>
  new Map([
    ["/", { body: page.html, type: "text/html; charset=utf-8" }],
    ["/app.js", { body: page.js, type: "text/javascript; charset=utf-8" }],
    ["/style.css", { body: page.css, type: "text/css; charset=utf-8" }],
    ["/config.json", { body: JSON.stringify({ nodeUrl: config.nodeUrl, network: config.network, scryptN: config.scryptN }), type: "application/json" }]
  ])

export const start = (page: PageBundle, config: WebConfig) => {
  const answers = routes(page, config)
  const headers = {
    "content-security-policy": contentSecurityPolicy(config.nodeUrl),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store"
  }
  return Bun.serve({
    hostname: config.host,
    port: config.port,
    fetch(request) {
      if (request.method !== "GET" && request.method !== "HEAD") return new Response("only GET\n", { status: 405, headers: { ...headers, allow: "GET, HEAD" } })
      const answer = answers.get(new URL(request.url).pathname)
      if (answer === undefined) return new Response("not found\n", { status: 404, headers })
      return new Response(answer.body, { headers: { ...headers, "content-type": answer.type } })
    }
  })
}
