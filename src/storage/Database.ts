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

/** Where the node keeps its data, for the start-up line (never the password). */
export const describe = (cfg: NodeConfigShape): string =>
  Option.match(cfg.databaseUrl, {
    onNone: () => `pglite (${join(cfg.dataDir, "pglite")})`,
    onSome: (url) => {
      const u = new URL(Redacted.value(url))
      return `postgres (${u.hostname}:${u.port || 5432}${u.pathname})`
    }
  })

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
      onSome: (url) => BunPgClient.layer({ url, maxConnections: 8 })
    }))
)
