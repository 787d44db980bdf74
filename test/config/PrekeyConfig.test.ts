/** The prekey settings (SECURITY.md 24): documented defaults, values read, bad values named at start. */
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"

const fromEnv = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))

const pick = (cfg: NodeConfig.NodeConfigShape) => [
  cfg.bundleFetchBurst, cfg.bundleFetchPerMinute, cfg.bundleFetchBurstPerAddress, cfg.bundleFetchPerMinutePerAddress,
  cfg.prekeyPublishBurst, cfg.prekeyPublishPerMinute
]
const NAMES = [
  "BUNDLE_FETCH_BURST", "BUNDLE_FETCH_PER_MINUTE", "BUNDLE_FETCH_BURST_PER_ADDRESS", "BUNDLE_FETCH_PER_MINUTE_PER_ADDRESS",
  "PREKEY_PUBLISH_BURST", "PREKEY_PUBLISH_PER_MINUTE"
]

describe("prekey settings", () => {
  test("defaults as in the README, values from the environment", () => {
    expect(pick(Either.getOrThrow(fromEnv({})))).toEqual([20, 10, 100, 60, 10, 10])
    expect(pick(Either.getOrThrow(fromEnv(Object.fromEntries(NAMES.map((n, i) => [n, String(i + 1)])))))).toEqual([1, 2, 3, 4, 5, 6])
  })

  test("a bad value stops the start with the variable's name", () => {
    for (const name of NAMES) {
      for (const value of ["0", "x"]) {
        const r = fromEnv({ [name]: value })
        expect(Either.isLeft(r) && String(r.left)).toContain(name)
      }
    }
  })
})
