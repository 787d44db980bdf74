/**
 * Every setting the node reads from the environment, with its default as an operator reads it and
 * what it means: `--help` prints this list, and `test/config/Settings.test.ts` checks that it is the
 * README's table row for row, that `NodeConfig.fromEnv` reads exactly these variables, and that each
 * default given here is the one the node uses.
 */
export interface Setting {
  readonly name: string
  readonly default: string
  /** Markdown (backticks), as in the README. */
  readonly meaning: string
}

export const SETTINGS: ReadonlyArray<Setting> = [
  { name: "L2PS_MESSAGING_PORT", default: "3006", meaning: "L2PS WebSocket port; if taken, the node does not start" },
  { name: "SIGNALING_PORT", default: "3005", meaning: "legacy signaling WebSocket port (`MessagingPeer`); if taken, the node does not start" },
  { name: "RPC_SIGNALING_PORT", default: "0", meaning: "the reference node's name for the legacy port; preferred over `SIGNALING_PORT` when non-zero" },
  { name: "LEGACY_OFFLINE_PER_SENDER", default: "100", meaning: "queued legacy messages per sender (counted in storage, across recipients)" },
  { name: "HOST", default: "0.0.0.0", meaning: "interface to listen on" },
  { name: "DATABASE_URL", default: "(unset)", meaning: "Postgres URL; unset means embedded PGlite" },
  { name: "DATA_DIR", default: "./data", meaning: "where PGlite keeps its files" },
  { name: "L2PS_NETWORKS", default: "default", meaning: "comma-separated network uids this node serves" },
  { name: "L2PS_NETWORKS_FILE", default: "(unset)", meaning: "JSON file of per-network limits: `{\"<uid>\": {\"rateLimitPerSec\": 50, …}}`; its networks are served too" },
  { name: "RATE_LIMIT_PER_SEC", default: "20", meaning: "messages per second per key (token bucket refill)" },
  { name: "RATE_LIMIT_BURST", default: "40", meaning: "token bucket capacity per key" },
  { name: "EPOCH_QUOTA", default: "600", meaning: "messages per key per epoch" },
  { name: "EPOCH_SECONDS", default: "60", meaning: "epoch length" },
  { name: "PROOF_WINDOW_SECONDS", default: "300", meaning: "register/history proofs must be this fresh" },
  { name: "MAX_SESSIONS_PER_KEY", default: "5", meaning: "live sessions (devices) per key; the oldest is closed (4001) past it. Also the most devices with published prekeys per key and network (`prekeys_publish` for a new one past it: `PREKEY_LIMIT`)" },
  { name: "OFFLINE_QUEUE_PER_PAIR", default: "200", meaning: "pending messages per (sender, recipient)" },
  { name: "MAX_CONNECTIONS", default: "20000", meaning: "open WebSockets per server; past it the upgrade gets 503" },
  { name: "IDLE_TIMEOUT_SECONDS", default: "120", meaning: "the server pings quiet sockets; one that sends nothing, not even a pong, for this long is closed (1–960)" },
  { name: "WS_COMPRESSION", default: "off", meaning: "permessage-deflate on the L2PS port for clients that offer it (Bun and browsers do; others are served plain), text frames only (binary frames are ciphertext and never shrink): `off`, `shared` (one compressor, reset after every frame: about 7 % fewer bytes for JSON sessions, at twice the node's CPU a message) or a compressor and decompressor kept per socket, `4KB`, `8KB`, `16KB` or `32KB` (the compressor's memory per socket; the decompressor's window grows with it; `4KB` and up measured 180-200 KB a socket in all, against about 24 KB for a whole session without them); see `bench/RESULTS.md`, Bandwidth and \"Compression off by default\"" },
  { name: "L2PS_MAX_BATCH_SIZE", default: "500", meaning: "a batch closes at this many messages…" },
  { name: "L2PS_BATCH_INTERVAL_MS", default: "2000", meaning: "…or this long after its first message" },
  { name: "COMMIT_BATCH_MAX", default: "2048", meaning: "most messages the relay writes in one group commit (also at most 8 MiB of them); larger batches carry more per second, each waits a little longer" },
  { name: "L1_BLOCK_INTERVAL_MS", default: "1000", meaning: "block time of the embedded local L1 chain (blocks are made only while a batch waits for inclusion or finality)" },
  { name: "L1_FINALITY_DEPTH", default: "2", meaning: "blocks on top of the including block before a batch is confirmed" },
  { name: "MAX_CONNECTIONS_PER_ADDRESS", default: "256", meaning: "open WebSockets per remote address; past it a new socket is closed at once (1008)" },
  { name: "REGISTRATION_BURST_PER_ADDRESS", default: "60", meaning: "registrations per remote address: a bucket of this size…" },
  { name: "REGISTRATION_RATE_PER_ADDRESS", default: "2", meaning: "…refilled at this many per second; past it `RATE_LIMITED`" },
  { name: "OFFLINE_TTL", default: "30 days", meaning: "queued messages older than this expire and are deleted once batched (an Effect duration: `12 hours`, `7 days`)" },
  { name: "MESSAGE_RETENTION", default: "(unset)", meaning: "how long confirmed (`l2ps_confirmed`) messages are kept: `30d`, `12h`, `2w` or an Effect duration (`30 days`); older ones are removed in chunks of 500 (their batch headers stay, their inclusion proofs go: see Batches and L1 anchoring); a message still waiting for its recipient is left to `OFFLINE_TTL`. Unset: everything is kept" },
  { name: "ADMIN_PORT", default: "9464", meaning: "HTTP port of the status page, the admin API, `/health`, `/ready` and `/metrics`; 0 turns it off" },
  { name: "ADMIN_HOST", default: "127.0.0.1", meaning: "interface the admin port listens on (not `HOST`): open it wider only behind `ADMIN_TOKEN`" },
  { name: "ADMIN_TOKEN", default: "(unset)", meaning: "when set, everything on the admin port but `/health` needs it: `Authorization: Bearer <token>`, or a browser's login with any user name and the token as password; unset, the admin port is open to whoever reaches it (and the node warns when `ADMIN_HOST` is not loopback)" },
  { name: "HEALTH_BATCH_LAG_SECONDS", default: "60", meaning: "`/ready` says degraded (503) when a network's oldest unbatched message is older than this…" },
  { name: "HEALTH_FINALITY_LAG_SECONDS", default: "300", meaning: "…or its oldest batch not yet final on L1 is older than this (or L1 does not answer within 3 s)" },
  { name: "LOG_LEVEL", default: "info", meaning: "`all`, `trace`, `debug`, `info`, `warning`, `error`, `fatal` or `none`" },
  { name: "REGISTRATION_TIMEOUT_SECONDS", default: "30", meaning: "a socket that has not registered this long after it opened is closed (4008 \"Not registered in time\"), on both servers" },
  { name: "RESERVED_CONNECTIONS_PERCENT", default: "25", meaning: "share of `MAX_CONNECTIONS` (per server) that sockets not yet registered cannot take; past their share a new socket is closed at once (1013 \"Server busy: try again later\") (0–99)" },
  { name: "TRUSTED_PROXIES", default: "(unset)", meaning: "comma-separated addresses or CIDRs (`10.0.0.0/8,::1`) of reverse proxies whose `X-Forwarded-For` is believed: the client is its right-most hop that is not itself a listed proxy; from any other peer the header is ignored" },
  { name: "LEGACY_CLIENT_IDS_PER_KEY", default: "16", meaning: "clientIds one legacy ML-DSA signing key may hold (counted in storage); a new one past it is `RATE_LIMITED`" },
  { name: "LEGACY_REQUIRE_CHALLENGE", default: "false", meaning: "refuse legacy registrations without the challenge extension (2.9.1 clients then cannot register)" },
  { name: "CONNECTION_FRAME_RATE", default: "100", meaning: "frames per second per connection, on both servers: a bucket refilled at this rate…" },
  { name: "CONNECTION_FRAME_BURST", default: "200", meaning: "…of this size; past it `RATE_LIMITED` \"Too many frames\". A registered L2PS session's accepted `send`s are not counted (the per-key limits govern them), its refused ones are, and a socket whose refusals outrun the bucket is closed (1008). The SDK's `MessagingPeer` 2.9.1 sends two frames per message (`request_public_key`, then `message`): on the legacy server it gets half this rate in messages" },
  { name: "REPLAY_CACHE_MAX", default: "1000000", meaning: "register/history proofs remembered at once to refuse replays (`im_replay_cache_entries`); when full, only holders of fewer than 16 (by key and by address) are still taken, within a reserve of a quarter of it" },
  { name: "REPLAY_CACHE_PER_KEY", default: "1000", meaning: "proofs remembered at once per key; past it `RATE_LIMITED` \"Too many proofs for this key\"" },
  { name: "REPLAY_CACHE_PER_ADDRESS", default: "10000", meaning: "proofs remembered at once per remote address; past it `RATE_LIMITED` \"Too many proofs from this address\"" },
  { name: "PROOF_FUTURE_SKEW_SECONDS", default: "30", meaning: "how far ahead of the node's clock a proof may be dated (the past window stays `PROOF_WINDOW_SECONDS`)" },
  { name: "REQUIRE_BOUND_PROOFS", default: "false", meaning: "`true`: register/history proofs must be bound to the network and this node (`proofVersion` 2, `SECURITY.md`); the SDK's clients, which sign the reference's string, are then refused" },
  { name: "OFFLINE_BYTES_PER_SENDER", default: "16777216 (16 MiB)", meaning: "bytes of messages one key may have waiting undelivered (queued, or unacknowledged by an `ack` client) in a network, across its recipients; each counts its payload's JSON length + 1024; past it `RATE_LIMITED`" },
  { name: "OFFLINE_BYTES_PER_RECIPIENT", default: "33554432 (32 MiB)", meaning: "the same, for what waits for one key across its senders" },
  { name: "SESSION_OUTPUT_BYTES", default: "8388608", meaning: "characters a session may have waiting to be written, its own replies included; past it the session stops taking requests until its socket drains (both servers)" },
  { name: "STALLED_SOCKET_SECONDS", default: "30", meaning: "a socket that takes nothing of what it is sent (past the transport's 4 MiB buffer) for this long is terminated; its unwritten messages wait in storage" },
  { name: "HISTORY_PAGE_BYTES", default: "1048576", meaning: "most characters of messages in one history page (each counted as its payload + 1 KiB); past it the page ends early with `hasMore: true`" },
  { name: "READ_BURST_PER_KEY", default: "10000", meaning: "read budget per key (all its sessions): a bucket of this many cost units…" },
  { name: "READ_RATE_PER_KEY", default: "2000", meaning: "…refilled at this many per second; a read costs 1 + rows read + 1 per 4 KiB answered; past it `RATE_LIMITED` \"Too many reads\"" },
  { name: "READ_BURST_PER_ADDRESS", default: "40000", meaning: "read budget per remote address (all its keys): a bucket of this many cost units…" },
  { name: "READ_RATE_PER_ADDRESS", default: "8000", meaning: "…refilled at this many per second" },
  { name: "DISCOVER_MAX_PEERS", default: "1000", meaning: "most keys in one `discover_response` (and in `registered.onlinePeers`, and in a legacy `discover`); the rest through `nextCursor`" },
  { name: "PRESENCE_BURST", default: "4", meaning: "presence changes (`peer_joined`/`peer_left`) of one key announced at once…" },
  { name: "PRESENCE_PER_MINUTE", default: "30", meaning: "…then at most this many per minute; changes past it are coalesced and the key's latest state is announced when the bucket allows" },
  { name: "BUNDLE_FETCH_BURST", default: "20", meaning: "`bundle_fetch`es per requesting key (all its sessions, per network): a bucket of this many…" },
  { name: "BUNDLE_FETCH_PER_MINUTE", default: "10", meaning: "…refilled at this many per minute; past it `RATE_LIMITED` \"Too many bundle fetches\" (`im_prekey_refused_total`). Each fetch takes one one-time prekey of each kind from every device of its target: this bounds how fast one key drains another's pools" },
  { name: "BUNDLE_FETCH_BURST_PER_ADDRESS", default: "100", meaning: "`bundle_fetch`es per remote address (all its keys; an IPv6 /64 counts as one): a bucket of this many…" },
  { name: "BUNDLE_FETCH_PER_MINUTE_PER_ADDRESS", default: "60", meaning: "…refilled at this many per minute; past it `RATE_LIMITED` \"Too many bundle fetches from this address\" (keys cost nothing to make: this bounds what one host drains)" },
  { name: "PREKEY_PUBLISH_BURST", default: "10", meaning: "`prekeys_publish`es per key (each checks up to 152 signatures): a bucket of this many…" },
  { name: "PREKEY_PUBLISH_PER_MINUTE", default: "10", meaning: "…refilled at this many per minute; past it `RATE_LIMITED` \"Too many prekey uploads\"" },
  { name: "INVITES_PER_KEY", default: "20", meaning: "invite records (`invite_store`) one key may keep in a network; past it `INVITE_LIMIT` until one expires or is deleted" },
  { name: "INVITE_RECORD_MAX_CHARS", default: "8192", meaning: "most characters of one sealed invite record; a larger one is `INVALID_MESSAGE`" },
  { name: "INVITE_MAX_TTL", default: "30 days", meaning: "furthest ahead an invite record may expire (an Effect duration); expired records are deleted within a minute" },
  { name: "NATS_URL", default: "(unset)", meaning: "NATS server(s), `nats://host:port` (comma-separated): makes the node a cluster member, with `DATABASE_URL` on the Postgres every node shares (with PGlite it is a start-up error); unset, the node runs alone" },
  { name: "NODE_ID", default: "(generated)", meaning: "this node's name in the cluster ([A-Za-z0-9_-], at most 64); unset, one is made on first start and kept in `DATA_DIR/node-id`" },
  { name: "NATS_PING_INTERVAL_MS", default: "2000", meaning: "the node pings NATS this often…" },
  { name: "NATS_MAX_PING_OUT", default: "2", meaning: "…and counts the link dead after this many unanswered pings, then reconnects (it never gives up)" },
  { name: "PG_TCP_KEEPALIVES", default: "10,5,3", meaning: "TCP keepalives the Postgres server keeps on this node's connections: seconds idle, seconds between probes, probes (sent at connect as `tcp_keepalives_*`, with `tcp_user_timeout` their sum), so that a node cut off from the database loses its connection, and its locks, in about 25 s instead of hours; `off` leaves the server's settings" },
  { name: "CLUSTER_RESYNC_MS", default: "3000", meaning: "in a cluster, how often a node reads storage again for what waits for its sessions (a push lost on the bus is delivered by then; also at once after a bus reconnect)" },
]

/** `npm run node -- --help`: every setting with its default, for a terminal. */
export const helpText = (version: string): string => {
  const plain = (text: string) => text.replaceAll("`", "")
  const width = Math.max(...SETTINGS.map((s) => s.name.length))
  return [
    `Demos IM node ${version}`,
    "",
    "usage: npm run node [-- --help | --version]",
    "",
    "Settings are environment variables (name, default, meaning):",
    "",
    ...SETTINGS.map((s) => `  ${s.name.padEnd(width)}  ${plain(s.default)}\n  ${" ".repeat(width)}  ${plain(s.meaning)}`),
    ""
  ].join("\n")
}
