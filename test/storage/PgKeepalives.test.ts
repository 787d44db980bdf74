/**
 * PG_TCP_KEEPALIVES reaches the Postgres server: each connection the node opens carries the
 * keepalive settings, so the server probes it and drops it (with its advisory locks) once the node is
 * cut off. Read back from the server itself on a real Postgres over TCP, where the settings apply to
 * the connection's socket.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, test } from "bun:test"
import { Effect, Layer, Option, Redacted } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import * as Database from "../../src/storage/Database.ts"

const url = process.env["TEST_DATABASE_URL"]

const settingsThrough = (keepalives: Option.Option<NodeConfig.PgKeepalives>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<Record<string, string>>`
      SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS interval,
             current_setting('tcp_keepalives_count') AS count, current_setting('tcp_user_timeout') AS user_timeout`
    return row!
  }).pipe(
    Effect.provide(Database.layer.pipe(
      Layer.provide(NodeConfig.layer({ databaseUrl: Option.some(Redacted.make(url!)), pgKeepalives: keepalives }))
    )),
    Effect.runPromise
  )

describe.skipIf(url === undefined)("Postgres TCP keepalives", () => {
  test("the node's connections carry the default 10 s / 5 s / 3 probes, and a user timeout of their sum", async () => {
    const defaults = NodeConfig.make({}).pgKeepalives
    expect(Option.getOrNull(defaults)).toEqual({ idleSeconds: 10, intervalSeconds: 5, count: 3 })
    expect(await settingsThrough(defaults)).toEqual({ idle: "10", interval: "5", count: "3", user_timeout: "25000" })
    expect(await settingsThrough(Option.some({ idleSeconds: 4, intervalSeconds: 2, count: 2 })))
      .toEqual({ idle: "4", interval: "2", count: "2", user_timeout: "8000" })
  })

  test("off leaves the server's own settings", async () => {
    const server = await settingsThrough(Option.none())
    expect(server.idle).not.toBe("10")
    expect(server.user_timeout).toBe("0")
  })

  test("the setting's forms: idle,interval,probes or off; anything else is refused", () => {
    expect(NodeConfig.parsePgKeepalives(" 30, 10 ,4 ")).toEqual(Option.some({ idleSeconds: 30, intervalSeconds: 10, count: 4 }))
    expect(NodeConfig.parsePgKeepalives("off")).toEqual(Option.none())
    for (const bad of ["", "10,5", "10,5,3,1", "0,5,3", "10,-5,3", "ten,5,3", "10,5,99999"]) {
      expect([bad, NodeConfig.parsePgKeepalives(bad)]).toEqual([bad, undefined])
    }
  })
})
