import { describe, expect, test } from "bun:test"
import { WS_COMPRESSIONS } from "../../src/config/WsCompression.ts"
import { ConfigProvider, Effect, Either, Option } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeConfig from "../../src/config/NodeConfig.ts"

const fromEnv = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))

describe("NodeConfig from the environment", () => {
  test("defaults, as documented", () => {
    const cfg = Either.getOrThrow(fromEnv({}))
    expect(cfg.l2psPort).toBe(3006)
    expect(Option.isNone(cfg.databaseUrl)).toBe(true)
    expect(cfg.dataDir).toBe("./data")
    expect([...cfg.networks.keys()]).toEqual(["default"])
    expect(cfg.networks.get("default")).toEqual({
      rateLimitPerSec: 20, rateLimitBurst: 40, epochQuota: 600, epochSeconds: 60, offlineQueuePerPair: 200, maxSessionsPerKey: 5,
      offlineBytesPerSender: 16 * 1024 * 1024, offlineBytesPerRecipient: 32 * 1024 * 1024
    })
    expect(cfg.proofWindowMillis).toBe(300_000)
    expect([cfg.maxBatchSize, cfg.batchIntervalMillis, cfg.finalityDepth, cfg.blockIntervalMillis]).toEqual([500, 2000, 2, 1000])
  })

  test("values and per-network overrides from a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "im-cfg-"))
    const file = join(dir, "networks.json")
    writeFileSync(file, JSON.stringify({ beta: { rateLimitPerSec: 5, epochQuota: 10, offlineBytesPerRecipient: 2_000_000 }, gamma: {} }))
    const cfg = Either.getOrThrow(fromEnv({
      L2PS_MESSAGING_PORT: "4000", L2PS_NETWORKS: "alpha, beta", L2PS_NETWORKS_FILE: file, RATE_LIMIT_BURST: "7",
      PROOF_WINDOW_SECONDS: "60", DATABASE_URL: "postgres://u:secret@db/x", OFFLINE_BYTES_PER_SENDER: "1000000",
      OFFLINE_BYTES_PER_RECIPIENT: "3000000"
    }))
    expect(cfg.l2psPort).toBe(4000)
    expect([...cfg.networks.keys()]).toEqual(["alpha", "beta", "gamma"])
    expect(cfg.networks.get("alpha")).toMatchObject({ rateLimitPerSec: 20, rateLimitBurst: 7 })
    expect(cfg.networks.get("beta")).toMatchObject({ rateLimitPerSec: 5, rateLimitBurst: 7, epochQuota: 10 })
    expect(cfg.networks.get("alpha")).toMatchObject({ offlineBytesPerSender: 1_000_000, offlineBytesPerRecipient: 3_000_000 })
    expect(cfg.networks.get("beta")).toMatchObject({ offlineBytesPerSender: 1_000_000, offlineBytesPerRecipient: 2_000_000 })
    expect(cfg.proofWindowMillis).toBe(60_000)
    // The URL stays redacted when printed.
    expect(String(Option.getOrThrow(cfg.databaseUrl))).not.toContain("secret")
  })

  test("security settings: frame budget, replay cache, proof skew, bound proofs (defaults and values)", () => {
    const d = Either.getOrThrow(fromEnv({}))
    expect([d.connectionFrameRate, d.connectionFrameBurst, d.replayCacheMax, d.replayPerKeyMax, d.replayPerAddressMax])
      .toEqual([100, 200, 1_000_000, 1000, 10_000])
    expect([d.proofFutureSkewMillis, d.requireBoundProofs]).toEqual([30_000, false])
    const cfg = Either.getOrThrow(fromEnv({
      CONNECTION_FRAME_RATE: "300", CONNECTION_FRAME_BURST: "600", REPLAY_CACHE_MAX: "5000", REPLAY_CACHE_PER_KEY: "50",
      REPLAY_CACHE_PER_ADDRESS: "500", PROOF_FUTURE_SKEW_SECONDS: "5", REQUIRE_BOUND_PROOFS: "true"
    }))
    expect([cfg.connectionFrameRate, cfg.connectionFrameBurst, cfg.replayCacheMax, cfg.replayPerKeyMax, cfg.replayPerAddressMax])
      .toEqual([300, 600, 5000, 50, 500])
    expect([cfg.proofFutureSkewMillis, cfg.requireBoundProofs]).toEqual([5000, true])
    for (const name of ["CONNECTION_FRAME_RATE", "CONNECTION_FRAME_BURST", "REPLAY_CACHE_MAX", "REPLAY_CACHE_PER_KEY", "REPLAY_CACHE_PER_ADDRESS"]) {
      const r = fromEnv({ [name]: "0" })
      expect(String(Either.isLeft(r) ? r.left : "")).toContain(name)
    }
    expect(String(Either.flip(fromEnv({ REQUIRE_BOUND_PROOFS: "maybe" })).pipe(Either.getOrElse(() => "")))).toContain("REQUIRE_BOUND_PROOFS")
  })

  test("WS_COMPRESSION: each documented value, and a bad one names the variable", () => {
    for (const c of WS_COMPRESSIONS) expect(Either.getOrThrow(fromEnv({ WS_COMPRESSION: c })).wsCompression).toBe(c)
    expect(String(Either.flip(fromEnv({ WS_COMPRESSION: "256KB" })).pipe(Either.getOrElse(() => "")))).toContain("WS_COMPRESSION")
  })

  test("a bad value is a start-up error naming the variable, never a silent default", () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ RATE_LIMIT_PER_SEC: "abc" }, "RATE_LIMIT_PER_SEC"],
      [{ RATE_LIMIT_BURST: "0" }, "RATE_LIMIT_BURST"],
      [{ EPOCH_QUOTA: "1.5" }, "EPOCH_QUOTA"],
      [{ L2PS_MESSAGING_PORT: "70000" }, "L2PS_MESSAGING_PORT"],
      [{ L2PS_NETWORKS: "ok,not ok" }, "L2PS_NETWORKS"],
      [{ L2PS_NETWORKS: "default,legacy" }, "L2PS_NETWORKS"],
      [{ OFFLINE_TTL: "soon" }, "OFFLINE_TTL"],
      [{ ADMIN_PORT: "-1" }, "ADMIN_PORT"],
      [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
      [{ MAX_CONNECTIONS_PER_ADDRESS: "0" }, "MAX_CONNECTIONS_PER_ADDRESS"],
      [{ L2PS_NETWORKS_FILE: "/nonexistent.json" }, "L2PS_NETWORKS_FILE"],
      [{ L1_FINALITY_DEPTH: "-1" }, "L1_FINALITY_DEPTH"],
      [{ OFFLINE_BYTES_PER_SENDER: "0" }, "OFFLINE_BYTES_PER_SENDER"],
      [{ OFFLINE_BYTES_PER_RECIPIENT: "lots" }, "OFFLINE_BYTES_PER_RECIPIENT"]
    ]
    for (const [env, name] of cases) {
      const r = fromEnv(env)
      expect(Either.isLeft(r)).toBe(true)
      expect(String(Either.isLeft(r) ? r.left : "")).toContain(name)
    }
    const dir = mkdtempSync(join(tmpdir(), "im-cfg-"))
    const bad = join(dir, "bad.json")
    writeFileSync(bad, JSON.stringify({ beta: { rateLimitPerSec: "fast" } }))
    const r = fromEnv({ L2PS_NETWORKS_FILE: bad })
    expect(Either.isLeft(r) && String(r.left)).toContain("rateLimitPerSec")
    const reserved = join(dir, "reserved.json")
    for (const uid of ["legacy", "not ok"]) {
      writeFileSync(reserved, JSON.stringify({ [uid]: { rateLimitPerSec: 5 } }))
      const r2 = fromEnv({ L2PS_NETWORKS_FILE: reserved })
      expect(Either.isLeft(r2) && String(r2.left)).toContain(`network uid "${uid}"`)
    }
  })

  test("connection slots: registration deadline, reserved share and trusted proxies (security review finding 10)", () => {
    const cfg = Either.getOrThrow(fromEnv({}))
    expect([cfg.registrationTimeoutMillis, cfg.reservedConnectionsPercent, cfg.trustedProxies]).toEqual([30_000, 25, []])
    const set = Either.getOrThrow(fromEnv({
      REGISTRATION_TIMEOUT_SECONDS: "5", RESERVED_CONNECTIONS_PERCENT: "0", TRUSTED_PROXIES: "10.0.0.0/8, ::1"
    }))
    expect([set.registrationTimeoutMillis, set.reservedConnectionsPercent, set.trustedProxies.length]).toEqual([5000, 0, 2])
    for (const [env, name] of [
      [{ REGISTRATION_TIMEOUT_SECONDS: "0" }, "REGISTRATION_TIMEOUT_SECONDS"],
      [{ RESERVED_CONNECTIONS_PERCENT: "100" }, "RESERVED_CONNECTIONS_PERCENT"],
      [{ TRUSTED_PROXIES: "10.0.0.0/8,proxy.local" }, "TRUSTED_PROXIES"]
    ] as const) {
      const r = fromEnv(env)
      expect(Either.isLeft(r) && String(r.left)).toContain(name)
    }
    const r = fromEnv({ TRUSTED_PROXIES: "10.0.0.0/8,proxy.local" })
    expect(Either.isLeft(r) && String(r.left)).toContain("proxy.local")
  })

  test("legacy settings: clientIds per signing key, required challenge, message limits as an L2PS key's", () => {
    const d = Either.getOrThrow(fromEnv({}))
    expect([d.legacyClientIdsPerKey, d.legacyRequireChallenge]).toEqual([16, false])
    expect(d.legacyLimits).toEqual(d.networks.get("default")!)
    const cfg = Either.getOrThrow(fromEnv({ LEGACY_CLIENT_IDS_PER_KEY: "3", LEGACY_REQUIRE_CHALLENGE: "true", RATE_LIMIT_PER_SEC: "2" }))
    expect([cfg.legacyClientIdsPerKey, cfg.legacyRequireChallenge, cfg.legacyLimits.rateLimitPerSec]).toEqual([3, true, 2])
    for (const env of [{ LEGACY_CLIENT_IDS_PER_KEY: "0" }, { LEGACY_REQUIRE_CHALLENGE: "maybe" }]) {
      const r = fromEnv(env)
      expect(Either.isLeft(r) && String(r.left)).toContain(Object.keys(env)[0]!)
    }
  })
  test("cluster settings: NATS_URL needs DATABASE_URL (the error names both), NODE_ID checked, ping defaults", () => {
    const d = Either.getOrThrow(fromEnv({}))
    expect([Option.isNone(d.natsUrl), Option.isNone(d.nodeId), d.natsPingIntervalMillis, d.natsMaxPingOut]).toEqual([true, true, 2000, 2])
    const alone = fromEnv({ NATS_URL: "nats://127.0.0.1:4222" })
    expect(Either.isLeft(alone)).toBe(true)
    const message = String(Either.isLeft(alone) ? alone.left : "")
    expect(message).toContain("NATS_URL")
    expect(message).toContain("DATABASE_URL")
    const cfg = Either.getOrThrow(fromEnv({
      NATS_URL: "nats://10.0.0.1:4222, nats://10.0.0.2:4222", DATABASE_URL: "postgres://db/x", NODE_ID: "node-a_1",
      NATS_PING_INTERVAL_MS: "500", NATS_MAX_PING_OUT: "3"
    }))
    expect([Option.getOrNull(cfg.natsUrl), Option.getOrNull(cfg.nodeId), cfg.natsPingIntervalMillis, cfg.natsMaxPingOut])
      .toEqual(["nats://10.0.0.1:4222, nats://10.0.0.2:4222", "node-a_1", 500, 3])
    for (const [env, name] of [
      [{ NODE_ID: "a.b" }, "NODE_ID"],
      [{ NODE_ID: "x".repeat(65) }, "NODE_ID"],
      [{ NATS_URL: "http://x:4222", DATABASE_URL: "postgres://db/x" }, "NATS_URL"],
      [{ NATS_PING_INTERVAL_MS: "0" }, "NATS_PING_INTERVAL_MS"]
    ] as const) {
      const r = fromEnv(env)
      expect(Either.isLeft(r) && String(r.left)).toContain(name)
    }
  })
})

describe("MESSAGE_RETENTION", () => {
  test("unset keeps everything; 30d, 12h, 2w and Effect durations are read; anything else is refused by name", () => {
    expect(Either.getOrThrow(fromEnv({})).messageRetentionMillis).toBeNull()
    expect(Either.getOrThrow(fromEnv({ MESSAGE_RETENTION: "30d" })).messageRetentionMillis).toBe(30 * 86_400_000)
    expect(Either.getOrThrow(fromEnv({ MESSAGE_RETENTION: "12h" })).messageRetentionMillis).toBe(12 * 3_600_000)
    expect(Either.getOrThrow(fromEnv({ MESSAGE_RETENTION: "2w" })).messageRetentionMillis).toBe(14 * 86_400_000)
    expect(Either.getOrThrow(fromEnv({ MESSAGE_RETENTION: "30 days" })).messageRetentionMillis).toBe(30 * 86_400_000)
    for (const bad of ["0d", "forever", "-1d", "30x"]) {
      const e = fromEnv({ MESSAGE_RETENTION: bad })
      expect(Either.isLeft(e)).toBe(true)
      expect(String(Either.isLeft(e) ? e.left : "")).toContain("MESSAGE_RETENTION")
    }
  })
})
