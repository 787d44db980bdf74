/** The admin port's settings as the node reads them from the environment. */
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either, Option, Redacted } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"

const fromEnv = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))

describe("admin settings", () => {
  test("defaults: loopback only, no token, lag thresholds of 60 s and 300 s; HOST does not move the admin port", () => {
    const cfg = Either.getOrThrow(fromEnv({ HOST: "0.0.0.0" }))
    expect(cfg.adminHost).toBe("127.0.0.1")
    expect(Option.isNone(cfg.adminToken)).toBe(true)
    expect([cfg.healthBatchLagMillis, cfg.healthFinalityLagMillis]).toEqual([60_000, 300_000])
  })

  test("set from the environment; the token stays redacted; an empty token is no token", () => {
    const cfg = Either.getOrThrow(fromEnv({
      ADMIN_HOST: "::",
      ADMIN_TOKEN: "s3cret",
      HEALTH_BATCH_LAG_SECONDS: "5",
      HEALTH_FINALITY_LAG_SECONDS: "7"
    }))
    expect(cfg.adminHost).toBe("::")
    expect(Redacted.value(Option.getOrThrow(cfg.adminToken))).toBe("s3cret")
    expect(String(Option.getOrThrow(cfg.adminToken))).not.toContain("s3cret")
    expect([cfg.healthBatchLagMillis, cfg.healthFinalityLagMillis]).toEqual([5000, 7000])
    expect(Option.isNone(Either.getOrThrow(fromEnv({ ADMIN_TOKEN: "" })).adminToken)).toBe(true)
  })

  test("a threshold that is not a positive integer stops the start with its name", () => {
    for (const name of ["HEALTH_BATCH_LAG_SECONDS", "HEALTH_FINALITY_LAG_SECONDS"]) {
      const bad = fromEnv({ [name]: "0" })
      expect(Either.isLeft(bad)).toBe(true)
      expect(String(Either.isLeft(bad) ? bad.left : "")).toContain(name)
    }
  })
})
