import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { NodeConfig, type NodeConfigShape } from "../config/NodeConfig.ts"
import * as BunPgClient from "./BunPgClient.ts"
import * as PgliteClient from "./PgliteClient.ts"

/** `host:port/database` of a Postgres URL: what start-up lines and errors name (never the password). */
export const postgresAddress = (url: Redacted.Redacted): string => {
  const u = new URL(Redacted.value(url))
  return `${u.hostname}:${u.port || 5432}${u.pathname}`
}

/** Where the node keeps its data, for the start-up line (never the password). */
export const describe = (cfg: NodeConfigShape): string =>
  Option.match(cfg.databaseUrl, {
    onNone: () => `pglite (${join(cfg.dataDir, "pglite")})`,
    onSome: (url) => `postgres (${postgresAddress(url)})`
  })

/** Why the first connection failed, in words; the driver's own message for what the server answered. */
const connectFailure = (cause: unknown): string => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
  if (code === "ERR_POSTGRES_CONNECTION_REFUSED") return "no connection (refused, or the host is unknown)"
  const message = cause instanceof Error ? cause.message : String(cause)
  return message.length > 0 ? message : "no connection"
}

/** The first connection's failure names the setting and the server, so that an operator sees which. */
const postgres = (url: Redacted.Redacted, cfg: NodeConfigShape) =>
  BunPgClient.layer({ url, maxConnections: 8, keepalives: Option.getOrUndefined(cfg.pgKeepalives) }).pipe(
    Layer.mapError((e) => {
      const secret = new URL(Redacted.value(url)).password
      const reason = connectFailure(e.cause)
      return new SqlError({
        message: `DATABASE_URL: cannot connect to postgres at ${postgresAddress(url)}: ${secret.length > 0 ? reason.replaceAll(secret, "***") : reason}`,
        cause: e.cause
      })
    })
  )

/**
 * Postgres when DATABASE_URL is set, else embedded PGlite under DATA_DIR. Not migrated: the node's
 * storage layer (`SqlStores`) runs the migrations before its stores, as it does over a host's client.
 */
export const layer: Layer.Layer<SqlClient.SqlClient, SqlError, NodeConfig> = Layer.unwrapEffect(
  Effect.map(NodeConfig, (cfg) =>
    Option.match(cfg.databaseUrl, {
      onNone: () => {
        const dataDir = join(cfg.dataDir, "pglite")
        return Layer.unwrapEffect(
          Effect.try({
            try: () => mkdirSync(dataDir, { recursive: true, mode: 0o700 }),
            catch: (cause) => new SqlError({ message: `cannot create data directory ${dataDir}`, cause })
          }).pipe(Effect.as(PgliteClient.layer({ dataDir })))
        )
      },
      onSome: (url) => postgres(url, cfg)
    }))
)
