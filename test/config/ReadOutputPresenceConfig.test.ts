/** The settings of findings 3, 8 and 17: documented defaults, values read, bad values named at start. */
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either } from "effect"
import * as NodeConfig from "../../src/config/NodeConfig.ts"

const fromEnv = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))

const pick = (cfg: NodeConfig.NodeConfigShape) => ({
  sessionOutputBytes: cfg.sessionOutputBytes,
  stalledSocketMillis: cfg.stalledSocketMillis,
  historyPageBytes: cfg.historyPageBytes,
  readBurstPerKey: cfg.readBurstPerKey,
  readRatePerKey: cfg.readRatePerKey,
  readBurstPerAddress: cfg.readBurstPerAddress,
  readRatePerAddress: cfg.readRatePerAddress,
  discoverMaxPeers: cfg.discoverMaxPeers,
  presenceBurst: cfg.presenceBurst,
  presencePerMinute: cfg.presencePerMinute
})

describe("output, read and presence settings", () => {
  test("defaults as in the README, values from the environment", () => {
    expect(pick(Either.getOrThrow(fromEnv({})))).toEqual({
      sessionOutputBytes: 8_388_608,
      stalledSocketMillis: 30_000,
      historyPageBytes: 1_048_576,
      readBurstPerKey: 10_000,
      readRatePerKey: 2_000,
      readBurstPerAddress: 40_000,
      readRatePerAddress: 8_000,
      discoverMaxPeers: 1000,
      presenceBurst: 4,
      presencePerMinute: 30
    })
    expect(pick(Either.getOrThrow(fromEnv({
      SESSION_OUTPUT_BYTES: "1000", STALLED_SOCKET_SECONDS: "5", HISTORY_PAGE_BYTES: "2000", READ_BURST_PER_KEY: "10",
      READ_RATE_PER_KEY: "1", READ_BURST_PER_ADDRESS: "20", READ_RATE_PER_ADDRESS: "2", DISCOVER_MAX_PEERS: "7",
      PRESENCE_BURST: "1", PRESENCE_PER_MINUTE: "6"
    })))).toEqual({
      sessionOutputBytes: 1000,
      stalledSocketMillis: 5000,
      historyPageBytes: 2000,
      readBurstPerKey: 10,
      readRatePerKey: 1,
      readBurstPerAddress: 20,
      readRatePerAddress: 2,
      discoverMaxPeers: 7,
      presenceBurst: 1,
      presencePerMinute: 6
    })
  })

  test("a bad value stops the start with the variable's name", () => {
    for (const name of ["SESSION_OUTPUT_BYTES", "STALLED_SOCKET_SECONDS", "HISTORY_PAGE_BYTES", "READ_BURST_PER_KEY", "READ_RATE_PER_KEY",
      "READ_BURST_PER_ADDRESS", "READ_RATE_PER_ADDRESS", "DISCOVER_MAX_PEERS", "PRESENCE_BURST", "PRESENCE_PER_MINUTE"]) {
      for (const value of ["0", "x"]) {
        const r = fromEnv({ [name]: value })
        expect(Either.isLeft(r) && String(r.left)).toContain(name)
      }
    }
  })
})
