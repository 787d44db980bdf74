import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { readFileSync } from "node:fs"
import { parseTrustedProxies } from "../domain/ClientAddress.ts"
import type { Cidr } from "../domain/IpAddress.ts"
import { LEGACY_UID } from "../domain/LegacyUid.ts"
import { WS_COMPRESSIONS, type WsCompression } from "./WsCompression.ts"

/** Limits that may differ per L2PS network. */
export interface NetworkLimits {
  /** Token-bucket refill per key, messages per second. */
  readonly rateLimitPerSec: number
  /** Token-bucket capacity per key. */
  readonly rateLimitBurst: number
  /** Messages per key per epoch. */
  readonly epochQuota: number
  readonly epochSeconds: number
  /** Pending (queued or unacknowledged) messages per (sender, recipient) pair. */
  readonly offlineQueuePerPair: number
  readonly maxSessionsPerKey: number
  /** Bytes of pending messages one sender may have waiting, across its recipients (`offlineWeightOf`). */
  readonly offlineBytesPerSender: number
  /** Bytes of pending messages that may wait for one recipient, across its senders. */
  readonly offlineBytesPerRecipient: number
}

export interface NodeConfigShape {
  readonly host: string
  /** L2PS WebSocket port; a busy one stops the node at start. */
  readonly l2psPort: number
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly dataDir: string
  /** The networks this node serves, by uid. */
  readonly networks: ReadonlyMap<string, NetworkLimits>
  readonly proofWindowMillis: number
  readonly maxFrameChars: number
  readonly maxCiphertextChars: number
  /** Above this the transport closes the socket (1009). */
  readonly maxPayloadBytes: number
  readonly maxConnections: number
  /** Silent sockets (no frame, no pong) are closed after this long; the server pings them. */
  readonly idleTimeoutSeconds: number
  /** permessage-deflate on the L2PS server (`WS_COMPRESSION`); a client that does not offer it is served plain. */
  readonly wsCompression: WsCompression
  readonly sessionInbox: number
  readonly sessionOutbox: number
  /** Characters of live messages from others a session's outbox may hold; past it they wait in storage. */
  readonly sessionOutboxBytes: number
  /** Frames per second per connection, whatever their type. */
  readonly connectionFrameRate: number
  readonly connectionFrameBurst: number
  readonly historyDefaultLimit: number
  readonly historyMaxLimit: number
  /** Most messages in one group commit (also bounded to 8 MiB by the committer). */
  readonly commitBatchMax: number
  /** Most proofs remembered at once to refuse replays (they are pruned as the window passes). */
  readonly replayCacheMax: number
  /** A batch closes at this many messages… */
  readonly maxBatchSize: number
  /** …or this long after its first message. */
  readonly batchIntervalMillis: number
  /** Blocks on top of the including block before a batch is final. */
  readonly finalityDepth: number
  /** Block time of the embedded local L1 chain. */
  readonly blockIntervalMillis: number
  /** Legacy signaling WebSocket port; a busy one stops the node at start. */
  readonly legacyPort: number
  /** Queued (offline) legacy messages per sender, across its recipients. */
  readonly legacyOfflinePerSender: number
  /** How long the node waits for a legacy peer's `peer_response` by default. */
  readonly legacyQuestionTimeoutMillis: number
  /** Open connections allowed per remote address. */
  readonly maxConnectionsPerAddress: number
  /** Registration attempts per remote address: a bucket of this size… */
  readonly registrationBurstPerAddress: number
  /** …refilled at this rate per second. */
  readonly registrationRatePerAddress: number
  /** Queued messages older than this become `failed`. */
  readonly offlineTtlMillis: number
  /** Confirmed messages older than this are removed (their batch headers stay); null keeps everything. */
  readonly messageRetentionMillis: number | null
  /** Admin HTTP port for /health and /metrics; 0 disables it. */
  readonly adminPort: number
  /** Interface of the admin server: loopback unless the operator opens it. */
  readonly adminHost: string
  /** Bearer token for everything on the admin port but `/health`; none: no check. */
  readonly adminToken: Option.Option<Redacted.Redacted>
  /** `/ready` is degraded when a network's oldest unbatched message is older than this… */
  readonly healthBatchLagMillis: number
  /** …or its oldest batch not yet final on L1 is older than this. */
  readonly healthFinalityLagMillis: number
  /**
   * How often the status page samples its counters (default 1000). Not a setting: scenarios on
   * TestClock space the samples out, so that moving their clock by minutes does not also step through
   * a sample for every second.
   */
  readonly statusSampleMillis?: number | undefined
  /**
   * How often presence changes held back by the per-key rate are looked at (default: from
   * `presencePerMinute`, 100 ms to 1 s). Not a setting: a TestClock scenario that is not about presence
   * and moves its clock by an hour sets it far apart, for the same reason as `statusSampleMillis`.
   */
  readonly presenceSweepMillis?: number | undefined
  readonly logLevel: LogLevel.LogLevel
  /** A socket that has not registered this long after it opened is closed (4008), on both servers. */
  readonly registrationTimeoutMillis: number
  /** Percent of `maxConnections` that sockets not yet registered cannot take (kept for registered ones). */
  readonly reservedConnectionsPercent: number
  /** Peers whose `X-Forwarded-For` is believed; empty: the header is ignored. */
  readonly trustedProxies: ReadonlyArray<Cidr>
  /** Message rate and quota per legacy signing key (the L2PS defaults: RATE_LIMIT_*, EPOCH_*). */
  readonly legacyLimits: NetworkLimits
  /** clientIds one legacy signing key may hold, counted in storage. */
  readonly legacyClientIdsPerKey: number
  /** Refuse legacy registrations without a proven server challenge (the 2.9.1 client cannot). */
  readonly legacyRequireChallenge: boolean
  /** How far ahead of the node's clock a register/history proof may be dated (the past window is `proofWindowMillis`). */
  readonly proofFutureSkewMillis: number
  /** Proofs remembered at once for one key… */
  readonly replayPerKeyMax: number
  /** …and for one remote address. */
  readonly replayPerAddressMax: number
  /** Register/history proofs must name this node and the network (SECURITY.md 6); otherwise both forms are accepted. */
  readonly requireBoundProofs: boolean
  /** Characters a session may have waiting to be written, its own replies and others' messages together. */
  readonly sessionOutputBytes: number
  /** A socket that takes nothing of what it is sent (no drain) for this long is closed. */
  readonly stalledSocketMillis: number
  /** Characters of messages in one history page; past it the page ends early with `hasMore`. */
  readonly historyPageBytes: number
  /** Read cost (rows, KiB) per key: a bucket of this size… */
  readonly readBurstPerKey: number
  /** …refilled at this rate per second. */
  readonly readRatePerKey: number
  /** Read cost per remote address: a bucket of this size… */
  readonly readBurstPerAddress: number
  /** …refilled at this rate per second. */
  readonly readRatePerAddress: number
  /** Most keys in one `discover_response`. */
  readonly discoverMaxPeers: number
  /** Presence changes of one key announced at once… */
  readonly presenceBurst: number
  /** …and then at most this many per minute; the rest are coalesced into its latest state. */
  readonly presencePerMinute: number
  /** `bundle_fetch`es per requesting key: a bucket of this size… */
  readonly bundleFetchBurst: number
  /** …refilled at this many per minute (each fetch takes a one-time key of every device of its target). */
  readonly bundleFetchPerMinute: number
  /** `bundle_fetch`es per remote address, all its keys together: a bucket of this size… */
  readonly bundleFetchBurstPerAddress: number
  /** …refilled at this many per minute. */
  readonly bundleFetchPerMinutePerAddress: number
  /** `prekeys_publish`es per key (each checks up to 152 signatures): a bucket of this size… */
  readonly prekeyPublishBurst: number
  /** …refilled at this many per minute. */
  readonly prekeyPublishPerMinute: number
  /** Invite records one key may keep in a network (docs/PROTOCOL.md, "Invites"). */
  readonly invitesPerKey: number
  /** Most characters of one sealed invite record. */
  readonly inviteRecordMaxChars: number
  /** Furthest ahead an invite record may expire. */
  readonly inviteMaxTtlMillis: number
  /** The NATS servers of a cluster (comma-separated URLs); none: the node runs alone. */
  readonly natsUrl: Option.Option<string>
  /** This node's name in a cluster; none: generated once and kept in `DATA_DIR`. */
  readonly nodeId: Option.Option<string>
  /** NATS client pings this often; after `natsMaxPingOut` unanswered ones the link is dead. */
  readonly natsPingIntervalMillis: number
  readonly natsMaxPingOut: number
  /** In a cluster, how often storage is read again for the local sessions' waiting messages. */
  readonly clusterResyncMillis: number
  /**
   * TCP keepalives the Postgres server applies to this node's connections (seconds idle, seconds
   * between probes, probes): a cut-off node's connection, and with it its locks, is dropped in
   * seconds rather than the server's default of hours. None: the server's own settings.
   */
  readonly pgKeepalives: Option.Option<PgKeepalives>
}

export interface PgKeepalives {
  readonly idleSeconds: number
  readonly intervalSeconds: number
  readonly count: number
}

/** `10,5,3` (idle, interval, probes) or `off`; undefined when malformed. */
export const parsePgKeepalives = (text: string): Option.Option<PgKeepalives> | undefined => {
  const t = text.trim()
  if (t === "off") return Option.none()
  const parts = t.split(",").map((p) => p.trim())
  if (parts.length !== 3 || !parts.every((p) => /^[1-9][0-9]{0,3}$/.test(p))) return undefined
  const [idleSeconds, intervalSeconds, count] = parts.map(Number) as [number, number, number]
  return Option.some({ idleSeconds, intervalSeconds, count })
}

/** The node's configuration port. */
export class NodeConfig extends Context.Tag("im/NodeConfig")<NodeConfig, NodeConfigShape>() {}

export const UID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** A node id is one NATS subject token and a readable log field. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

export const defaultLimits: NetworkLimits = {
  rateLimitPerSec: 20,
  rateLimitBurst: 40,
  epochQuota: 600,
  epochSeconds: 60,
  offlineQueuePerPair: 200,
  maxSessionsPerKey: 5,
  offlineBytesPerSender: 16 * 1024 * 1024,
  offlineBytesPerRecipient: 32 * 1024 * 1024
}

export const defaults: NodeConfigShape = {
  host: "0.0.0.0",
  l2psPort: 3006,
  databaseUrl: Option.none(),
  dataDir: "./data",
  networks: new Map([["default", defaultLimits]]),
  proofWindowMillis: 300_000,
  maxFrameChars: 262_144,
  maxCiphertextChars: 131_072,
  maxPayloadBytes: 1_048_576,
  maxConnections: 20_000,
  idleTimeoutSeconds: 120,
  wsCompression: "off",
  sessionInbox: 256,
  sessionOutbox: 512,
  sessionOutboxBytes: 4 * 1024 * 1024,
  connectionFrameRate: 100,
  connectionFrameBurst: 200,
  historyDefaultLimit: 50,
  historyMaxLimit: 200,
  commitBatchMax: 2048,
  replayCacheMax: 1_000_000,
  maxBatchSize: 500,
  batchIntervalMillis: 2000,
  finalityDepth: 2,
  blockIntervalMillis: 1000,
  legacyPort: 3005,
  legacyOfflinePerSender: 100,
  legacyQuestionTimeoutMillis: 30_000,
  maxConnectionsPerAddress: 256,
  registrationBurstPerAddress: 60,
  registrationRatePerAddress: 2,
  offlineTtlMillis: 30 * 86_400_000,
  messageRetentionMillis: null,
  adminPort: 9464,
  adminHost: "127.0.0.1",
  adminToken: Option.none(),
  healthBatchLagMillis: 60_000,
  healthFinalityLagMillis: 300_000,
  logLevel: LogLevel.Info,
  registrationTimeoutMillis: 30_000,
  reservedConnectionsPercent: 25,
  trustedProxies: [],
  legacyLimits: defaultLimits,
  legacyClientIdsPerKey: 16,
  legacyRequireChallenge: false,
  proofFutureSkewMillis: 30_000,
  replayPerKeyMax: 1000,
  replayPerAddressMax: 10_000,
  requireBoundProofs: false,
  sessionOutputBytes: 8 * 1024 * 1024,
  stalledSocketMillis: 30_000,
  historyPageBytes: 1024 * 1024,
  readBurstPerKey: 10_000,
  readRatePerKey: 2_000,
  readBurstPerAddress: 40_000,
  readRatePerAddress: 8_000,
  discoverMaxPeers: 1000,
  presenceBurst: 4,
  presencePerMinute: 30,
  bundleFetchBurst: 20,
  bundleFetchPerMinute: 10,
  bundleFetchBurstPerAddress: 100,
  bundleFetchPerMinutePerAddress: 60,
  prekeyPublishBurst: 10,
  prekeyPublishPerMinute: 10,
  invitesPerKey: 20,
  inviteRecordMaxChars: 8192,
  inviteMaxTtlMillis: 30 * 86_400_000,
  natsUrl: Option.none(),
  nodeId: Option.none(),
  natsPingIntervalMillis: 2000,
  natsMaxPingOut: 2,
  pgKeepalives: Option.some({ idleSeconds: 10, intervalSeconds: 5, count: 3 }),
  clusterResyncMillis: 3000
}

/** Tests and embedding hosts: defaults with overrides, `networks` given as uids or full limits. */
export const make = (
  overrides: Partial<Omit<NodeConfigShape, "networks">> & {
    readonly networks?: ReadonlyArray<string> | ReadonlyMap<string, NetworkLimits>
    readonly limits?: Partial<NetworkLimits>
  } = {}
): NodeConfigShape => {
  const { limits, networks, ...rest } = overrides
  const base = { ...defaultLimits, ...limits }
  const nets = networks === undefined
    ? new Map([["default", base]])
    : Array.isArray(networks)
    ? new Map(networks.map((uid) => [uid, base] as const))
    : networks as ReadonlyMap<string, NetworkLimits>
  return { ...defaults, ...rest, networks: nets }
}

export const layer = (overrides: Parameters<typeof make>[0] = {}): Layer.Layer<NodeConfig> =>
  Layer.succeed(NodeConfig, make(overrides))

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 })
  )

const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a port number (1-65535)`, validation: (n) => n >= 1 && n <= 65535 })
  )

const PositiveInt = Schema.Int.pipe(Schema.positive())

const NetworkLimitsFields = Schema.Struct({
  rateLimitPerSec: Schema.optionalWith(PositiveInt, { exact: true }),
  rateLimitBurst: Schema.optionalWith(PositiveInt, { exact: true }),
  epochQuota: Schema.optionalWith(PositiveInt, { exact: true }),
  epochSeconds: Schema.optionalWith(PositiveInt, { exact: true }),
  offlineQueuePerPair: Schema.optionalWith(PositiveInt, { exact: true }),
  maxSessionsPerKey: Schema.optionalWith(PositiveInt, { exact: true }),
  offlineBytesPerSender: Schema.optionalWith(PositiveInt, { exact: true }),
  offlineBytesPerRecipient: Schema.optionalWith(PositiveInt, { exact: true })
})

/** The keys a network may set in L2PS_NETWORKS_FILE. */
export const NETWORK_FILE_KEYS: ReadonlyArray<string> = Object.keys(NetworkLimitsFields.fields)

/** The JSON file named by L2PS_NETWORKS_FILE: `{ "<uid>": { <limit>: <n>, … }, … }`. */
const NetworksFile = Schema.Record({ key: Schema.String, value: NetworkLimitsFields }).pipe(
  // On the record, not its key schema: a refined key would drop the entry silently instead of failing.
  Schema.filter((networks) => {
    const bad = Object.keys(networks).find((uid) => !UID_PATTERN.test(uid) || uid === LEGACY_UID)
    return bad === undefined ||
      `network uid ${JSON.stringify(bad)}: use [A-Za-z0-9_-], at most 64 chars; "${LEGACY_UID}" is reserved for the legacy server`
  })
)

const invalidFile = (path: string, what: string) => ConfigError.InvalidData(["L2PS_NETWORKS_FILE"], `${path}: ${what}`)

/**
 * Every mistake in the file on one line, by name: a misspelt limit would otherwise be ignored and
 * the network run with the default the operator meant to change.
 */
const readNetworksFile = (path: string) =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => readFileSync(path, "utf8"),
      catch: (e) => invalidFile(path, `cannot read it (${e instanceof Error ? e.message : String(e)})`)
    })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => invalidFile(path, `not JSON (${e instanceof Error ? e.message : String(e)})`)
    })
    if (typeof json === "object" && json !== null && !Array.isArray(json)) {
      for (const [uid, limits] of Object.entries(json)) {
        if (typeof limits !== "object" || limits === null || Array.isArray(limits)) continue
        const unknown = Object.keys(limits).filter((k) => !NETWORK_FILE_KEYS.includes(k))
        if (unknown.length > 0) {
          return yield* Effect.fail(invalidFile(
            path,
            `network ${JSON.stringify(uid)}: unknown key${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k)).join(", ")} (accepted: ${NETWORK_FILE_KEYS.join(", ")})`
          ))
        }
      }
    }
    return yield* Schema.decodeUnknownEither(NetworksFile)(json).pipe(
      Either.mapLeft((e) =>
        invalidFile(
          path,
          ParseResult.ArrayFormatter.formatErrorSync(e)
            .map((issue) => `${issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : ""}${issue.message}`)
            .join("; ")
        )
      )
    )
  })

const SHORT_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `30d`, `12h`, `90m`, `45s`, `2w`, or an Effect duration (`30 days`); positive. */
export const parseRetention = (text: string): number | undefined => {
  const short = /^\s*(\d+)\s*([smhdw])\s*$/.exec(text)
  const millis = short !== null
    ? Number(short[1]) * SHORT_UNITS[short[2]!]!
    : Option.match(Duration.decodeUnknown(text.trim()), { onNone: () => NaN, onSome: Duration.toMillis })
  return Number.isFinite(millis) && millis > 0 ? millis : undefined
}

/** A Postgres URL with a host; the value itself is never repeated (it holds the password). */
const isPostgresUrl = (url: Redacted.Redacted): boolean => {
  try {
    const u = new URL(Redacted.value(url))
    return (u.protocol === "postgres:" || u.protocol === "postgresql:") && u.hostname.length > 0
  } catch {
    return false
  }
}

/** Reads every setting from the environment; a bad value fails start-up with the variable's name. */
export const fromEnv: Effect.Effect<NodeConfigShape, ConfigError.ConfigError> = Effect.gen(function*() {
  const env = yield* Config.all({
    host: Config.string("HOST").pipe(Config.withDefault(defaults.host)),
    l2psPort: port("L2PS_MESSAGING_PORT", defaults.l2psPort),
    databaseUrl: Config.option(Config.redacted("DATABASE_URL").pipe(
      Config.validate({
        message: "DATABASE_URL must be a URL such as postgres://user:password@host:5432/database",
        validation: isPostgresUrl
      })
    )),
    dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(defaults.dataDir)),
    networks: Config.string("L2PS_NETWORKS").pipe(
      Config.withDefault("default"),
      Config.map((s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)),
      Config.validate({
        message: `L2PS_NETWORKS must be a comma-separated list of uids ([A-Za-z0-9_-], at most 64 chars), not "${LEGACY_UID}"`,
        validation: (uids) => uids.every((u) => UID_PATTERN.test(u) && u !== LEGACY_UID)
      })
    ),
    networksFile: Config.option(Config.string("L2PS_NETWORKS_FILE")),
    rateLimitPerSec: positive("RATE_LIMIT_PER_SEC", defaultLimits.rateLimitPerSec),
    rateLimitBurst: positive("RATE_LIMIT_BURST", defaultLimits.rateLimitBurst),
    epochQuota: positive("EPOCH_QUOTA", defaultLimits.epochQuota),
    epochSeconds: positive("EPOCH_SECONDS", defaultLimits.epochSeconds),
    proofWindowSeconds: positive("PROOF_WINDOW_SECONDS", defaults.proofWindowMillis / 1000),
    maxSessionsPerKey: positive("MAX_SESSIONS_PER_KEY", defaultLimits.maxSessionsPerKey),
    offlineQueuePerPair: positive("OFFLINE_QUEUE_PER_PAIR", defaultLimits.offlineQueuePerPair),
    maxConnections: positive("MAX_CONNECTIONS", defaults.maxConnections),
    // Bun sends pings at a fraction of this and allows at most 960 s.
    idleTimeoutSeconds: Config.integer("IDLE_TIMEOUT_SECONDS").pipe(
      Config.withDefault(defaults.idleTimeoutSeconds),
      Config.validate({ message: "IDLE_TIMEOUT_SECONDS must be between 1 and 960", validation: (n) => n >= 1 && n <= 960 })
    ),
    wsCompression: Config.literal(...WS_COMPRESSIONS)("WS_COMPRESSION").pipe(Config.withDefault(defaults.wsCompression)),
    maxBatchSize: positive("L2PS_MAX_BATCH_SIZE", defaults.maxBatchSize),
    batchIntervalMillis: positive("L2PS_BATCH_INTERVAL_MS", defaults.batchIntervalMillis),
    commitBatchMax: positive("COMMIT_BATCH_MAX", defaults.commitBatchMax),
    finalityDepth: positive("L1_FINALITY_DEPTH", defaults.finalityDepth),
    blockIntervalMillis: positive("L1_BLOCK_INTERVAL_MS", defaults.blockIntervalMillis),
    signalingPort: port("SIGNALING_PORT", defaults.legacyPort),
    // The reference node's variable; preferred when non-zero.
    rpcSignalingPort: Config.integer("RPC_SIGNALING_PORT").pipe(
      Config.withDefault(0),
      Config.validate({
        message: "RPC_SIGNALING_PORT must be a port number (1-65535), or 0 for unset",
        validation: (n) => n >= 0 && n <= 65535
      })
    ),
    legacyOfflinePerSender: positive("LEGACY_OFFLINE_PER_SENDER", defaults.legacyOfflinePerSender),
    maxConnectionsPerAddress: positive("MAX_CONNECTIONS_PER_ADDRESS", defaults.maxConnectionsPerAddress),
    registrationBurstPerAddress: positive("REGISTRATION_BURST_PER_ADDRESS", defaults.registrationBurstPerAddress),
    registrationRatePerAddress: positive("REGISTRATION_RATE_PER_ADDRESS", defaults.registrationRatePerAddress),
    offlineTtl: Config.duration("OFFLINE_TTL").pipe(
      Config.withDefault(Duration.millis(defaults.offlineTtlMillis)),
      Config.validate({ message: "OFFLINE_TTL must be a positive duration, e.g. \"30 days\"", validation: (d) => Duration.toMillis(d) > 0 })
    ),
    messageRetention: Config.option(Config.string("MESSAGE_RETENTION").pipe(
      Config.mapOrFail((text) => {
        const millis = parseRetention(text)
        return millis === undefined
          ? Either.left(ConfigError.InvalidData(["MESSAGE_RETENTION"], `must be a positive duration such as 30d, 12h or "30 days", not ${JSON.stringify(text.slice(0, 64))}`))
          : Either.right(millis)
      })
    )),
    adminPort: Config.integer("ADMIN_PORT").pipe(
      Config.withDefault(defaults.adminPort),
      Config.validate({ message: "ADMIN_PORT must be 0 (off) or a port number", validation: (n) => n >= 0 && n <= 65535 })
    ),
    adminHost: Config.string("ADMIN_HOST").pipe(Config.withDefault(defaults.adminHost)),
    adminToken: Config.option(Config.redacted("ADMIN_TOKEN")),
    healthBatchLagSeconds: positive("HEALTH_BATCH_LAG_SECONDS", defaults.healthBatchLagMillis / 1000),
    healthFinalityLagSeconds: positive("HEALTH_FINALITY_LAG_SECONDS", defaults.healthFinalityLagMillis / 1000),
    logLevel: Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(defaults.logLevel)),
    registrationTimeoutSeconds: positive("REGISTRATION_TIMEOUT_SECONDS", defaults.registrationTimeoutMillis / 1000),
    reservedConnectionsPercent: Config.integer("RESERVED_CONNECTIONS_PERCENT").pipe(
      Config.withDefault(defaults.reservedConnectionsPercent),
      Config.validate({ message: "RESERVED_CONNECTIONS_PERCENT must be between 0 and 99", validation: (n) => n >= 0 && n <= 99 })
    ),
    trustedProxies: Config.string("TRUSTED_PROXIES").pipe(
      Config.withDefault(""),
      Config.mapOrFail((text) => {
        const { bad, proxies } = parseTrustedProxies(text)
        return bad === undefined
          ? Either.right(proxies)
          : Either.left(ConfigError.InvalidData(["TRUSTED_PROXIES"], `${JSON.stringify(bad.slice(0, 64))} is no address or CIDR (e.g. 10.0.0.0/8, ::1)`))
      })
    ),
    legacyClientIdsPerKey: positive("LEGACY_CLIENT_IDS_PER_KEY", defaults.legacyClientIdsPerKey),
    legacyRequireChallenge: Config.boolean("LEGACY_REQUIRE_CHALLENGE").pipe(Config.withDefault(defaults.legacyRequireChallenge)),
    connectionFrameRate: positive("CONNECTION_FRAME_RATE", defaults.connectionFrameRate),
    connectionFrameBurst: positive("CONNECTION_FRAME_BURST", defaults.connectionFrameBurst),
    replayCacheMax: positive("REPLAY_CACHE_MAX", defaults.replayCacheMax),
    proofFutureSkewSeconds: Config.integer("PROOF_FUTURE_SKEW_SECONDS").pipe(
      Config.withDefault(defaults.proofFutureSkewMillis / 1000),
      Config.validate({ message: "PROOF_FUTURE_SKEW_SECONDS must be a non-negative integer", validation: (n) => n >= 0 })
    ),
    replayPerKeyMax: positive("REPLAY_CACHE_PER_KEY", defaults.replayPerKeyMax),
    replayPerAddressMax: positive("REPLAY_CACHE_PER_ADDRESS", defaults.replayPerAddressMax),
    requireBoundProofs: Config.boolean("REQUIRE_BOUND_PROOFS").pipe(Config.withDefault(defaults.requireBoundProofs)),
    offlineBytesPerSender: positive("OFFLINE_BYTES_PER_SENDER", defaultLimits.offlineBytesPerSender),
    offlineBytesPerRecipient: positive("OFFLINE_BYTES_PER_RECIPIENT", defaultLimits.offlineBytesPerRecipient),
    sessionOutputBytes: positive("SESSION_OUTPUT_BYTES", defaults.sessionOutputBytes),
    stalledSocketSeconds: positive("STALLED_SOCKET_SECONDS", defaults.stalledSocketMillis / 1000),
    historyPageBytes: positive("HISTORY_PAGE_BYTES", defaults.historyPageBytes),
    readBurstPerKey: positive("READ_BURST_PER_KEY", defaults.readBurstPerKey),
    readRatePerKey: positive("READ_RATE_PER_KEY", defaults.readRatePerKey),
    readBurstPerAddress: positive("READ_BURST_PER_ADDRESS", defaults.readBurstPerAddress),
    readRatePerAddress: positive("READ_RATE_PER_ADDRESS", defaults.readRatePerAddress),
    discoverMaxPeers: positive("DISCOVER_MAX_PEERS", defaults.discoverMaxPeers),
    presenceBurst: positive("PRESENCE_BURST", defaults.presenceBurst),
    presencePerMinute: positive("PRESENCE_PER_MINUTE", defaults.presencePerMinute),
    bundleFetchBurst: positive("BUNDLE_FETCH_BURST", defaults.bundleFetchBurst),
    bundleFetchPerMinute: positive("BUNDLE_FETCH_PER_MINUTE", defaults.bundleFetchPerMinute),
    bundleFetchBurstPerAddress: positive("BUNDLE_FETCH_BURST_PER_ADDRESS", defaults.bundleFetchBurstPerAddress),
    bundleFetchPerMinutePerAddress: positive("BUNDLE_FETCH_PER_MINUTE_PER_ADDRESS", defaults.bundleFetchPerMinutePerAddress),
    prekeyPublishBurst: positive("PREKEY_PUBLISH_BURST", defaults.prekeyPublishBurst),
    prekeyPublishPerMinute: positive("PREKEY_PUBLISH_PER_MINUTE", defaults.prekeyPublishPerMinute),
    invitesPerKey: positive("INVITES_PER_KEY", defaults.invitesPerKey),
    inviteRecordMaxChars: positive("INVITE_RECORD_MAX_CHARS", defaults.inviteRecordMaxChars),
    inviteMaxTtl: Config.duration("INVITE_MAX_TTL").pipe(
      Config.withDefault(Duration.millis(defaults.inviteMaxTtlMillis)),
      Config.validate({ message: "INVITE_MAX_TTL must be a positive duration, e.g. \"30 days\"", validation: (d) => Duration.toMillis(d) >= 1000 })
    ),
    natsUrl: Config.option(Config.string("NATS_URL")).pipe(
      Config.map(Option.filter((s) => s.trim().length > 0)),
      Config.validate({
        message: "NATS_URL must be nats://host:port (several comma-separated)",
        validation: (o) => Option.isNone(o) || o.value.split(",").every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim()))
      })
    ),
    nodeId: Config.option(Config.string("NODE_ID")).pipe(
      Config.map(Option.filter((s) => s.length > 0)),
      Config.validate({
        message: "NODE_ID must be 1-64 characters of [A-Za-z0-9_-]",
        validation: (o) => Option.isNone(o) || NODE_ID_PATTERN.test(o.value)
      })
    ),
    natsPingIntervalMillis: positive("NATS_PING_INTERVAL_MS", defaults.natsPingIntervalMillis),
    natsMaxPingOut: positive("NATS_MAX_PING_OUT", defaults.natsMaxPingOut),
    pgKeepalives: Config.string("PG_TCP_KEEPALIVES").pipe(
      Config.withDefault("10,5,3"),
      Config.mapOrFail((text) => {
        const parsed = parsePgKeepalives(text)
        return parsed === undefined
          ? Either.left(ConfigError.InvalidData(["PG_TCP_KEEPALIVES"], `must be idle,interval,probes in seconds (e.g. 10,5,3) or off, not ${JSON.stringify(text.slice(0, 64))}`))
          : Either.right(parsed)
      })
    ),
    clusterResyncMillis: positive("CLUSTER_RESYNC_MS", defaults.clusterResyncMillis)
  })
  if (Option.isSome(env.natsUrl) && Option.isNone(env.databaseUrl)) {
    // Nodes of a cluster share one database; an embedded PGlite is one node's own.
    return yield* Effect.fail(ConfigError.InvalidData(
      ["NATS_URL"],
      "NATS_URL makes this node a cluster member, which needs DATABASE_URL (a Postgres shared by every node), not the embedded PGlite"
    ))
  }
  const base: NetworkLimits = {
    rateLimitPerSec: env.rateLimitPerSec,
    rateLimitBurst: env.rateLimitBurst,
    epochQuota: env.epochQuota,
    epochSeconds: env.epochSeconds,
    offlineQueuePerPair: env.offlineQueuePerPair,
    maxSessionsPerKey: env.maxSessionsPerKey,
    offlineBytesPerSender: env.offlineBytesPerSender,
    offlineBytesPerRecipient: env.offlineBytesPerRecipient
  }
  const networks = new Map<string, NetworkLimits>(env.networks.map((uid) => [uid, base]))
  if (Option.isSome(env.networksFile)) {
    const file = yield* readNetworksFile(env.networksFile.value)
    for (const [uid, over] of Object.entries(file)) {
      const defined = Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined))
      networks.set(uid, { ...base, ...defined })
    }
  }
  return {
    ...defaults,
    host: env.host,
    l2psPort: env.l2psPort,
    databaseUrl: env.databaseUrl,
    dataDir: env.dataDir,
    networks,
    proofWindowMillis: env.proofWindowSeconds * 1000,
    maxConnections: env.maxConnections,
    idleTimeoutSeconds: env.idleTimeoutSeconds,
    wsCompression: env.wsCompression,
    maxBatchSize: env.maxBatchSize,
    batchIntervalMillis: env.batchIntervalMillis,
    commitBatchMax: env.commitBatchMax,
    finalityDepth: env.finalityDepth,
    blockIntervalMillis: env.blockIntervalMillis,
    legacyPort: env.rpcSignalingPort !== 0 ? env.rpcSignalingPort : env.signalingPort,
    legacyOfflinePerSender: env.legacyOfflinePerSender,
    maxConnectionsPerAddress: env.maxConnectionsPerAddress,
    registrationBurstPerAddress: env.registrationBurstPerAddress,
    registrationRatePerAddress: env.registrationRatePerAddress,
    offlineTtlMillis: Duration.toMillis(env.offlineTtl),
    messageRetentionMillis: Option.getOrNull(env.messageRetention),
    adminPort: env.adminPort,
    adminHost: env.adminHost,
    // An empty token would let anyone in who sends an empty one: unset it is.
    adminToken: Option.filter(env.adminToken, (t) => Redacted.value(t).length > 0),
    healthBatchLagMillis: env.healthBatchLagSeconds * 1000,
    healthFinalityLagMillis: env.healthFinalityLagSeconds * 1000,
    logLevel: env.logLevel,
    registrationTimeoutMillis: env.registrationTimeoutSeconds * 1000,
    reservedConnectionsPercent: env.reservedConnectionsPercent,
    trustedProxies: env.trustedProxies,
    legacyLimits: base,
    legacyClientIdsPerKey: env.legacyClientIdsPerKey,
    legacyRequireChallenge: env.legacyRequireChallenge,
    connectionFrameRate: env.connectionFrameRate,
    connectionFrameBurst: env.connectionFrameBurst,
    replayCacheMax: env.replayCacheMax,
    proofFutureSkewMillis: env.proofFutureSkewSeconds * 1000,
    replayPerKeyMax: env.replayPerKeyMax,
    replayPerAddressMax: env.replayPerAddressMax,
    requireBoundProofs: env.requireBoundProofs,
    sessionOutputBytes: env.sessionOutputBytes,
    stalledSocketMillis: env.stalledSocketSeconds * 1000,
    historyPageBytes: env.historyPageBytes,
    readBurstPerKey: env.readBurstPerKey,
    readRatePerKey: env.readRatePerKey,
    readBurstPerAddress: env.readBurstPerAddress,
    readRatePerAddress: env.readRatePerAddress,
    discoverMaxPeers: env.discoverMaxPeers,
    presenceBurst: env.presenceBurst,
    presencePerMinute: env.presencePerMinute,
    bundleFetchBurst: env.bundleFetchBurst,
    bundleFetchPerMinute: env.bundleFetchPerMinute,
    bundleFetchBurstPerAddress: env.bundleFetchBurstPerAddress,
    bundleFetchPerMinutePerAddress: env.bundleFetchPerMinutePerAddress,
    prekeyPublishBurst: env.prekeyPublishBurst,
    prekeyPublishPerMinute: env.prekeyPublishPerMinute,
    invitesPerKey: env.invitesPerKey,
    inviteRecordMaxChars: env.inviteRecordMaxChars,
    inviteMaxTtlMillis: Duration.toMillis(env.inviteMaxTtl),
    natsUrl: env.natsUrl,
    nodeId: env.nodeId,
    natsPingIntervalMillis: env.natsPingIntervalMillis,
    natsMaxPingOut: env.natsMaxPingOut,
    pgKeepalives: env.pgKeepalives,
    clusterResyncMillis: env.clusterResyncMillis
  }
})

export const layerFromEnv: Layer.Layer<NodeConfig, ConfigError.ConfigError> = Layer.effect(NodeConfig, fromEnv)
