/**
 * `npm run admin -- <command>`: the node's admin API from a shell, over plain HTTP. ADMIN_URL (default
 * http://127.0.0.1:9464) names the admin port, ADMIN_TOKEN its bearer token when the node has one.
 * Prints JSON (`status` and `sessions` a summary first); exits 1 when the node refuses, 2 on bad usage.
 */

const USAGE = `usage: npm run admin -- <command>
  status                      health, traffic and every network at a glance
  networks                    per network: sessions, mempool, queues, lags, limits
  sessions [--network N]      registered sessions by key (legacy: by client ID)
  nodes                       the cluster's nodes: alive or not, heartbeat age, sessions, jobs owned
  kick <key>                  closes every session of the key (L2PS key, legacy client ID or signer)
  ban <key> [--reason TEXT]   refuses the key's registrations from now on and closes its sessions
  unban <key>                 lifts a ban
  bans                        the banned keys
  message <hash>              a message's status, batch, L1 transaction and inclusion proof
  batch <network> <seq>       a batch header, its L1 status and its leaves
environment: ADMIN_URL (default http://127.0.0.1:9464), ADMIN_TOKEN`

class Refused extends Error {}

interface Call {
  readonly method: "GET" | "POST"
  readonly path: string
  readonly body?: Record<string, unknown>
}

/** The request a command makes, or undefined for bad usage. */
export const callOf = (args: ReadonlyArray<string>): Call | undefined => {
  const [command, ...rest] = args
  const flag = (name: string) => {
    const i = rest.indexOf(name)
    return i < 0 ? undefined : rest[i + 1]
  }
  const positional = rest.filter((a, i) => !a.startsWith("--") && !(i > 0 && rest[i - 1]!.startsWith("--")))
  const enc = encodeURIComponent
  switch (command) {
    case "status":
      return { method: "GET", path: "/api/status" }
    case "networks":
      return { method: "GET", path: "/api/networks" }
    case "bans":
      return { method: "GET", path: "/api/bans" }
    case "nodes":
      return { method: "GET", path: "/api/nodes" }
    case "sessions": {
      const network = flag("--network")
      return { method: "GET", path: network === undefined ? "/api/sessions" : `/api/sessions?network=${enc(network)}` }
    }
    case "kick":
    case "unban":
      return positional.length === 1 ? { method: "POST", path: `/api/${command}`, body: { key: positional[0] } } : undefined
    case "ban":
      return positional.length === 1
        ? { method: "POST", path: "/api/ban", body: { key: positional[0], reason: flag("--reason") ?? "" } }
        : undefined
    case "message":
      return positional.length === 1 ? { method: "GET", path: `/api/messages/${enc(positional[0]!)}` } : undefined
    case "batch":
      return positional.length === 2 ? { method: "GET", path: `/api/batches/${enc(positional[0]!)}/${enc(positional[1]!)}` } : undefined
  }
  return undefined
}

const summary = (command: string, body: any): string | undefined => {
  if (command === "status") {
    const lines = [
      `${body.health.status}${body.health.reasons.length > 0 ? `: ${body.health.reasons.join("; ")}` : ""}`,
      `version ${body.version}, up ${body.uptimeSeconds} s, ${body.connections} connections, ${body.sessions} sessions`,
      `L1 ${body.health.l1.name}: ${body.health.l1.reachable ? `head #${body.health.l1.head?.number ?? "none"}` : "unreachable"}`,
      ...body.networks.map((n: any) =>
        `  ${n.l2psUid}: ${n.sessions} sessions, mempool ${n.pending}, queued ${n.queued}, ` +
        `unconfirmed batches ${n.unconfirmedBatches}, batch lag ${n.batchLagSeconds.toFixed(1)} s, finality lag ${n.finalityLagSeconds.toFixed(1)} s`
      )
    ]
    return lines.join("\n")
  }
  if (command === "nodes") {
    return body.nodes.map((n: any) =>
      `${n.nodeId === body.self ? "*" : " "} ${n.nodeId}: ${n.state}, heartbeat ${n.heartbeatAgeSeconds} s ago` +
      `${n.host === null ? "" : `, ${n.host}`}${n.ports === null ? "" : ` (l2ps ${n.ports.l2ps}, legacy ${n.ports.legacy}, admin ${n.ports.admin})`}` +
      `${n.sessions === null ? "" : `, ${n.sessions} sessions`}, owns ${n.owned.length === 0 ? "nothing" : n.owned.join(" ")}`
    ).join("\n")
  }
  if (command === "sessions") return `${body.total} keys online${body.total > body.sessions.length ? ` (first ${body.sessions.length} listed)` : ""}`
  return undefined
}

export const run = async (args: ReadonlyArray<string>, env: Readonly<Record<string, string | undefined>>, out: (s: string) => void) => {
  const call = callOf(args)
  if (call === undefined) {
    out(USAGE)
    return 2
  }
  const base = (env["ADMIN_URL"] ?? "http://127.0.0.1:9464").replace(/\/+$/, "")
  const headers: Record<string, string> = { accept: "application/json" }
  if (env["ADMIN_TOKEN"]) headers["authorization"] = `Bearer ${env["ADMIN_TOKEN"]}`
  if (call.body !== undefined) headers["content-type"] = "application/json"
  const res = await fetch(base + call.path, {
    method: call.method,
    headers,
    ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) })
  })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: printed as it came
  }
  if (!res.ok) throw new Refused(`${res.status}: ${typeof body === "object" && body !== null && "error" in body ? String(body.error) : text}`)
  const head = summary(args[0]!, body)
  if (head !== undefined) out(head)
  out(JSON.stringify(body, null, 2))
  return 0
}

if (import.meta.main) {
  run(process.argv.slice(2), process.env, (s) => console.log(s)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Refused ? `refused ${e.message}` : `cannot reach the admin port: ${e instanceof Error ? e.message : String(e)}`)
      process.exit(1)
    }
  )
}
