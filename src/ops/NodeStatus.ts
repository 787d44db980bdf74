import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { hostname } from "node:os"
import pkg from "../../package.json" with { type: "json" }
import { NodeConfig } from "../config/NodeConfig.ts"
import { NodeIdentity } from "../config/NodeIdentity.ts"
import { NodeKey } from "../crypto/NodeKey.ts"
import { LEGACY_UID } from "../domain/LegacyUid.ts"
import * as Metrics from "../internal/Metrics.ts"
import { ClusterMembers, type Member } from "../internal/ClusterMembers.ts"
import { Ownership } from "../internal/Ownership.ts"
import { supervise } from "../internal/supervise.ts"
import { L1 } from "../l1/L1.ts"
import { type NetworkStats, PipelineStore } from "../l2ps/PipelineStore.ts"
import { normalizeClientId } from "../legacy/ClientId.ts"
import { bannedFormOf } from "../legacy/handlers/Register.ts"
import { LegacyPeers } from "../legacy/LegacyPeers.ts"
import { BAN_KEY_MAX, Bans } from "../limits/Bans.ts"
import { Peers } from "../relay/Peers.ts"
import type { Ban } from "../storage/BanStore.ts"
import { Storage, type StorageError } from "../storage/Storage.ts"
import { Broker, type BrokerState } from "../transport/Broker.ts"
import { type BatchDetail, type BatchSummary, detailOf, type L1Report, type MessageReport, messageReport, summaryOf } from "./Reports.ts"
import { type Percentiles, type Rate, StatusSamples } from "./StatusSamples.ts"

export const VERSION: string = pkg.version

export type { BatchDetail, BatchSummary, L1Report, MessageReport } from "./Reports.ts"

/** A network's pipeline depths with its sessions and its lags (seconds, 0 with nothing waiting). */
export interface NetworkStatus extends NetworkStats {
  readonly sessions: number
  readonly keys: number
  readonly batchLagSeconds: number
  readonly finalityLagSeconds: number
}

export interface Health {
  /** `degraded` with `reasons` when storage or L1 does not answer or a lag passes its threshold. */
  readonly status: "ok" | "degraded"
  readonly reasons: ReadonlyArray<string>
  readonly storage: "ok" | "unreachable"
  readonly l1: L1Report
  /** Only on a cluster member (`NATS_URL`): its id, its bus, and the jobs it owns through its lock connection. */
  readonly cluster?: ClusterHealth
}

export interface ClusterHealth {
  readonly nodeId: string
  readonly bus: BrokerState
  readonly busReconnects: number
  /** `lost`: the connection holding this node's locks does not answer; it owns nothing until it does. */
  readonly locks: "ok" | "lost"
  /** Jobs owned with their fencing epochs, e.g. `pipeline/default#3`. */
  readonly owned: ReadonlyArray<string>
}

export interface SessionInfo {
  readonly server: "l2ps" | "legacy"
  readonly l2psUid: string
  /** The L2PS public key, or the legacy clientId. */
  readonly key: string
  readonly sessions: number
  /** Legacy only: its signing key's SHA-256. */
  readonly signer?: string
}

export type { Member } from "../internal/ClusterMembers.ts"

/** The nodes sharing the database, as this node sees them (a cluster member only). */
export interface ClusterView {
  /** This node's id among them. */
  readonly self: string
  /** Every node that ever joined, by id; empty with `error` when the database did not answer. */
  readonly nodes: ReadonlyArray<Member>
  readonly error?: string
}

/** Everything the status page shows, in one read. */
export interface StatusSnapshot {
  readonly version: string
  readonly nodeKey: string
  readonly now: number
  readonly uptimeSeconds: number
  readonly health: Health
  readonly connections: number
  readonly sessions: number
  readonly networks: ReadonlyArray<NetworkStatus & { readonly batches: ReadonlyArray<BatchSummary> }>
  /** Messages in and out per second over the last minutes, oldest first. */
  readonly rates: ReadonlyArray<Rate>
  readonly totals: { readonly messagesIn: number; readonly messagesOut: number; readonly rateLimited: number }
  /** Over the last minute. */
  readonly commitLatency: Percentiles
  readonly errors: Readonly<Record<string, number>>
  /** Only on a cluster member (`NATS_URL`). */
  readonly cluster?: ClusterView
}

/** An operator's request the node refuses (an unknown or malformed key). */
export class AdminError extends Data.TaggedError("AdminError")<{ readonly message: string }> {}

/** What an operator may change; every change is logged with what and which key. */
export interface NodeAdmin {
  /** Closes every session of the key (L2PS key, legacy clientId or signer) on both servers. */
  readonly kick: (key: string) => Effect.Effect<{ readonly key: string; readonly closed: number }, AdminError>
  /** Refuses the key's registrations from now on (kept in storage) and closes its sessions. */
  readonly ban: (key: string, reason: string) => Effect.Effect<{ readonly ban: Ban; readonly closed: number }, AdminError | StorageError>
  readonly unban: (key: string) => Effect.Effect<{ readonly key: string; readonly wasBanned: boolean }, AdminError | StorageError>
  readonly bans: Effect.Effect<ReadonlyArray<Ban>, StorageError>
}

/**
 * What a host (and the admin server) may read about a running node, and what an operator may do to it.
 * The node's internal services stay inside `NodeCore`; this is the one window onto them.
 */
export class NodeStatus extends Context.Tag("im/NodeStatus")<NodeStatus, {
  readonly version: string
  /** The first 64 hex digits of the node's ML-DSA-65 public key: enough to tell nodes apart. */
  readonly nodeKey: string
  /** When the node's layer was built (Clock millis). */
  readonly startedAt: number
  readonly sessions: Effect.Effect<number>
  /** Fails when the database does not answer. */
  readonly storage: Effect.Effect<void, StorageError>
  /**
   * Per network the node serves (each configured one and `legacy`, at zero when idle, then any other
   * storage holds): queued, unbatched and unconfirmed messages and the ages of the oldest.
   */
  readonly networks: Effect.Effect<ReadonlyArray<NetworkStats>, StorageError>
  /** Never fails: what does not answer makes it `degraded`. */
  readonly health: Effect.Effect<Health>
  readonly snapshot: Effect.Effect<StatusSnapshot>
  /** Registered sessions by key, of one network or all, at most `max` (and how many there are). */
  readonly sessionList: (l2psUid: string | undefined, max: number) => Effect.Effect<{ readonly total: number; readonly sessions: ReadonlyArray<SessionInfo> }>
  readonly message: (messageHash: string) => Effect.Effect<ReadonlyArray<MessageReport>, StorageError>
  readonly batch: (l2psUid: string, seq: number) => Effect.Effect<BatchDetail | undefined, StorageError>
  /** The cluster's nodes; undefined on a node alone. */
  readonly cluster: Effect.Effect<ClusterView | undefined>
  readonly admin: NodeAdmin
}>() {}

/** A check that does not answer in this long counts as unreachable. */
const CHECK_TIMEOUT = "3 seconds"
/** Five minutes of per-second samples for the page's plot. */
const SAMPLES = 300
const RECENT_BATCHES = 10
/** How often a cluster member writes its own report (host, ports, sessions) next to its heartbeat. */
const REPORT_INTERVAL = "2 seconds"
/** Messages one hash may name (one per network and sender): an operator's lookup stays small. */
const MESSAGES_PER_HASH = 20

export const KICKED_CODE = 4002
export const KICKED_REASON = "Disconnected by the node's operator"
export const BANNED_CODE = 4003
export const BANNED_REASON = "Banned by the node's operator"

const HEX_KEY = /^[0-9a-fA-F]{64}$/

/** An L2PS key or a legacy signer in lower case, or a clientId as the legacy server normalises it. */
export const normalizeAdminKey = (raw: string): Either.Either<string, AdminError> => {
  const key = raw.trim()
  if (HEX_KEY.test(key)) return Either.right(key.toLowerCase())
  const clientId = key.length <= BAN_KEY_MAX ? normalizeClientId(key) : undefined
  return clientId === undefined
    ? Either.left(new AdminError({ message: "not a key: expected 64 hex characters (an L2PS key or a legacy signer) or a legacy client ID" }))
    : Either.right(clientId)
}

const zero = (l2psUid: string): NetworkStats => ({
  l2psUid,
  pending: 0,
  oldestPending: null,
  queued: 0,
  unconfirmedBatches: 0,
  oldestUnconfirmed: null
})

const lagSeconds = (now: number, since: number | null) => (since === null ? 0 : Math.max(0, now - since) / 1000)

export const layer = Layer.scoped(
  NodeStatus,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const storage = yield* Storage
    const pipeline = yield* PipelineStore
    const peers = yield* Peers
    const legacyPeers = yield* LegacyPeers
    const bans = yield* Bans
    const l1 = yield* L1
    const key = yield* NodeKey
    const startedAt = yield* Clock.currentTimeMillis
    const served = [...cfg.networks.keys(), LEGACY_UID]

    const samples = new StatusSamples(SAMPLES)
    const sample = Effect.gen(function*() {
      const [messagesIn, messagesOut, latency] = yield* Effect.all([
        Metric.value(Metrics.messagesIn),
        Metric.value(Metrics.messagesOut),
        Metric.value(Metrics.commitLatency)
      ])
      samples.add({ at: yield* Clock.currentTimeMillis, messagesIn: messagesIn.count, messagesOut: messagesOut.count, latency: latency.buckets })
    })
    yield* sample
    yield* supervise("status-samples", Effect.repeat(sample, Schedule.spaced(cfg.statusSampleMillis ?? 1000)))

    const networks = Effect.map(pipeline.stats, (stats) => {
      const byUid = new Map(stats.map((s) => [s.l2psUid, s]))
      return [...served.map((uid) => byUid.get(uid) ?? zero(uid)), ...stats.filter((s) => !served.includes(s.l2psUid))]
    })

    const sessionCounts = Effect.gen(function*() {
      const counts = new Map((yield* peers.perNetwork).map((n) => [n.l2psUid, n]))
      const legacy = yield* legacyPeers.count
      counts.set(LEGACY_UID, { l2psUid: LEGACY_UID, sessions: legacy, keys: legacy })
      return counts
    })

    const l1Report: Effect.Effect<L1Report> = l1.head.pipe(
      Effect.timeout(CHECK_TIMEOUT),
      Effect.map((head) => ({ name: l1.name, reachable: true, head: Option.getOrNull(head) })),
      Effect.orElseSucceed(() => ({ name: l1.name, reachable: false, head: null }))
    )

    /** The health verdict over a read of the networks (undefined: storage did not answer). */
    const verdict = (now: number, stats: ReadonlyArray<NetworkStats> | undefined, l1r: L1Report): Health => {
      const reasons: Array<string> = []
      if (stats === undefined) reasons.push("storage unreachable")
      if (!l1r.reachable) reasons.push(`L1 (${l1r.name}) unreachable`)
      for (const s of stats ?? []) {
        const batchLag = lagSeconds(now, s.oldestPending)
        if (batchLag * 1000 > cfg.healthBatchLagMillis) {
          reasons.push(`network ${s.l2psUid}: batch lag ${Math.round(batchLag)} s (threshold ${cfg.healthBatchLagMillis / 1000} s)`)
        }
        const finalityLag = lagSeconds(now, s.oldestUnconfirmed)
        if (finalityLag * 1000 > cfg.healthFinalityLagMillis) {
          reasons.push(`network ${s.l2psUid}: finality lag ${Math.round(finalityLag)} s (threshold ${cfg.healthFinalityLagMillis / 1000} s)`)
        }
      }
      return {
        status: reasons.length === 0 ? "ok" : "degraded",
        reasons,
        storage: stats === undefined ? "unreachable" : "ok",
        l1: l1r
      }
    }

    const broker = yield* Effect.serviceOption(Broker)
    const ownership = yield* Effect.serviceOption(Ownership)
    const identity = yield* Effect.serviceOption(NodeIdentity)
    const clusterHealth: Effect.Effect<ClusterHealth | undefined> = Effect.gen(function*() {
      if (Option.isNone(broker) || broker.value.kind !== "nats") return undefined
      const own = Option.getOrUndefined(ownership)
      return {
        nodeId: Option.match(identity, { onNone: () => "", onSome: (i) => i.id }),
        bus: yield* broker.value.state,
        busReconnects: yield* broker.value.reconnects,
        locks: own === undefined || (yield* own.healthy) ? "ok" : "lost",
        owned: own === undefined ? [] : (yield* own.owned).map((f) => `${f.name}#${f.epoch}`)
      }
    })
    const withCluster = (h: Health, c: ClusterHealth | undefined): Health => {
      if (c === undefined) return h
      const reasons = [...h.reasons]
      if (c.bus !== "connected") reasons.push(`bus (NATS) ${c.bus}: live delivery across nodes waits for storage reads`)
      if (c.locks === "lost") reasons.push("lock connection lost: this node owns no pipeline until it is back")
      return { ...h, status: reasons.length === 0 ? "ok" : "degraded", reasons, cluster: c }
    }

    const members = Option.getOrUndefined(yield* Effect.serviceOption(ClusterMembers))
    const sessionTotal = Effect.zipWith(peers.count, legacyPeers.count, (a, b) => a + b)
    if (members !== undefined) {
      const host = hostname()
      const report = Effect.gen(function*() {
        yield* members.report({
          host,
          version: VERSION,
          ports: { l2ps: cfg.l2psPort, legacy: cfg.legacyPort, admin: cfg.adminPort },
          sessions: yield* sessionTotal
        })
      }).pipe(Effect.catchAll((e) => Effect.logDebug("cluster report not written", e)))
      yield* supervise("cluster-report", Effect.repeat(report, Schedule.spaced(REPORT_INTERVAL)))
    }
    const self = Option.match(identity, { onNone: () => "", onSome: (i) => i.id })
    const cluster: Effect.Effect<ClusterView | undefined> = members === undefined
      ? Effect.succeed(undefined)
      : members.list.pipe(
        Effect.timeout(CHECK_TIMEOUT),
        Effect.map((nodes): ClusterView => ({ self, nodes })),
        Effect.orElseSucceed((): ClusterView => ({ self, nodes: [], error: "the database did not answer" }))
      )

    const readNetworks = networks.pipe(Effect.timeout(CHECK_TIMEOUT), Effect.option, Effect.map(Option.getOrUndefined))

    const health = Effect.gen(function*() {
      const [stats, l1r] = yield* Effect.all([readNetworks, l1Report], { concurrency: 2 })
      return withCluster(verdict(yield* Clock.currentTimeMillis, stats, l1r), yield* clusterHealth)
    })

    const snapshot = Effect.gen(function*() {
      const [stats, l1r] = yield* Effect.all([readNetworks, l1Report], { concurrency: 2 })
      const now = yield* Clock.currentTimeMillis
      const counts = yield* sessionCounts
      // Storage down: the networks at zero, and the health says why.
      const nets = yield* Effect.forEach(stats ?? served.map(zero), (s) =>
        Effect.gen(function*() {
          const batches = stats === undefined
            ? []
            : yield* pipeline.recentBatches(s.l2psUid, RECENT_BATCHES).pipe(Effect.orElseSucceed(() => []))
          const c = counts.get(s.l2psUid)
          return {
            ...s,
            sessions: c?.sessions ?? 0,
            keys: c?.keys ?? 0,
            batchLagSeconds: lagSeconds(now, s.oldestPending),
            finalityLagSeconds: lagSeconds(now, s.oldestUnconfirmed),
            batches: batches.map(summaryOf)
          }
        }))
      const clusterView = yield* cluster
      const [connections, messagesIn, messagesOut, rateLimited, all] = yield* Effect.all([
        Metric.value(Metrics.connections),
        Metric.value(Metrics.messagesIn),
        Metric.value(Metrics.messagesOut),
        Metric.value(Metrics.rateLimited),
        Metric.snapshot
      ])
      const errors: Record<string, number> = {}
      for (const { metricKey, metricState } of all) {
        if (metricKey.name !== "im_errors_total" || !MetricState.isCounterState(metricState)) continue
        const code = metricKey.tags.find((t) => t.key === "code")?.value ?? "unknown"
        errors[code] = (errors[code] ?? 0) + Number(metricState.count)
      }
      return {
        version: VERSION,
        nodeKey: key.publicKeyHex.slice(0, 64),
        now,
        uptimeSeconds: Math.floor((now - startedAt) / 1000),
        health: withCluster(verdict(now, stats, l1r), yield* clusterHealth),
        connections: connections.value,
        sessions: [...counts.values()].reduce((n, c) => n + c.sessions, 0),
        networks: nets,
        rates: samples.rates(),
        totals: { messagesIn: messagesIn.count, messagesOut: messagesOut.count, rateLimited: rateLimited.count },
        commitLatency: samples.percentiles(60),
        errors,
        ...(clusterView === undefined ? {} : { cluster: clusterView })
      } satisfies StatusSnapshot
    })

    const sessionList = (l2psUid: string | undefined, max: number) =>
      Effect.gen(function*() {
        const out: Array<SessionInfo> = []
        if (l2psUid !== LEGACY_UID) {
          const byKey = new Map<string, { l2psUid: string; key: string; n: number }>()
          for (const p of yield* peers.list(l2psUid)) {
            const id = `${p.l2psUid}\u0000${p.key}`
            const entry = byKey.get(id)
            if (entry === undefined) byKey.set(id, { l2psUid: p.l2psUid, key: p.key, n: 1 })
            else entry.n++
          }
          for (const e of byKey.values()) out.push({ server: "l2ps", l2psUid: e.l2psUid, key: e.key, sessions: e.n })
        }
        if (l2psUid === undefined || l2psUid === LEGACY_UID) {
          for (const p of yield* legacyPeers.list) {
            out.push({ server: "legacy", l2psUid: LEGACY_UID, key: p.clientId, sessions: 1, signer: p.signer })
          }
        }
        return { total: out.length, sessions: out.slice(0, max) }
      })

    const message = (messageHash: string) =>
      Effect.gen(function*() {
        const found = yield* pipeline.messagesByHash(messageHash, MESSAGES_PER_HASH)
        return yield* Effect.forEach(found, ({ batch, index, message: m }) =>
          Effect.map(
            batch === undefined ? Effect.succeed([]) : pipeline.batchLeaves(batch.id),
            (leaves) => messageReport(m, batch, index, leaves)
          ))
      })

    const batch = (l2psUid: string, seq: number) =>
      Effect.gen(function*() {
        const b = yield* pipeline.batchAt(l2psUid, seq)
        if (b === undefined) return undefined
        return detailOf(b, key.publicKeyHex, yield* pipeline.batchLeaves(b.id))
      })

    /** Closes the key's sessions on both servers; returns how many. */
    const closeAll = (k: string, code: number, reason: string) =>
      Effect.gen(function*() {
        const l2ps = yield* peers.ofKey(k)
        const legacy = (yield* legacyPeers.list).filter((p) => bannedFormOf(p.clientId) === k || p.signer === k)
        for (const p of l2ps) p.close(code, reason)
        for (const p of legacy) p.close(code, reason)
        return l2ps.length + legacy.length
      })

    const admin: NodeAdmin = {
      kick: (raw) =>
        Effect.gen(function*() {
          const k = yield* normalizeAdminKey(raw)
          const closed = yield* closeAll(k, KICKED_CODE, KICKED_REASON)
          yield* Effect.logInfo("admin: kicked a key").pipe(Effect.annotateLogs({ adminAction: "kick", key: k, closed }))
          return { key: k, closed }
        }),
      ban: (raw, reason) =>
        Effect.gen(function*() {
          const k = yield* normalizeAdminKey(raw)
          const ban = yield* bans.ban(k, reason.slice(0, 1000))
          const closed = yield* closeAll(k, BANNED_CODE, BANNED_REASON)
          yield* Effect.logInfo("admin: banned a key").pipe(Effect.annotateLogs({ adminAction: "ban", key: k, reason: ban.reason, closed }))
          return { ban, closed }
        }),
      unban: (raw) =>
        Effect.gen(function*() {
          const k = yield* normalizeAdminKey(raw)
          const wasBanned = yield* bans.unban(k)
          yield* Effect.logInfo("admin: unbanned a key").pipe(Effect.annotateLogs({ adminAction: "unban", key: k, wasBanned }))
          return { key: k, wasBanned }
        }),
      bans: bans.list
    }

    return {
      version: VERSION,
      nodeKey: key.publicKeyHex.slice(0, 64),
      startedAt,
      sessions: sessionTotal,
      storage: storage.ping,
      networks,
      health,
      snapshot,
      sessionList,
      message,
      batch,
      cluster,
      admin
    }
  })
)
