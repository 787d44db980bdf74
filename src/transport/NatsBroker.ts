import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { NodeConfig } from "../config/NodeConfig.ts"
import { NodeIdentity } from "../config/NodeIdentity.ts"
import { Broker, type BrokerState, layerMemory, makeRegistry } from "./Broker.ts"

export interface NatsOptions {
  readonly servers: ReadonlyArray<string>
  /** Shown by the server's monitoring: the node id. */
  readonly name: string
  /** The client pings this often and counts the link dead after `maxPingOut` unanswered pings. */
  readonly pingIntervalMillis: number
  readonly maxPingOut: number
}

const RECONNECT_WAIT_MILLIS = 500
/** A first connection attempt that hangs this long is abandoned and tried again. */
const CONNECT_TIMEOUT_MILLIS = 2000
/**
 * A registration waits at most this long for the server to confirm its key's subscription: a link
 * that stopped answering is not yet known dead (that takes pings), and the resync covers the rest.
 */
export const FLUSH_TIMEOUT_MILLIS = 1000

/**
 * A cluster member's bus: NATS core pub/sub (at most once). The client's defaults give up after ten
 * reconnect tries and notice a dead link only after minutes; here reconnection never gives up and a
 * dead link is found after `pingIntervalMillis × maxPingOut`. The node starts without NATS and
 * connects when it can: messages are stored first, so a node without a bus only delivers later.
 */
export const make = (options: NatsOptions) =>
  Effect.gen(function*() {
    const state = yield* SubscriptionRef.make<BrokerState>("connecting")
    let nc: NatsConnection | undefined
    let reconnects = 0
    const subs = new Map<string, Subscription>()
    const open = (subject: string) => {
      if (nc === undefined || nc.isClosed()) return
      subs.set(
        subject,
        nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err === null) registry.dispatch(subject, msg.subject, msg.data)
          }
        })
      )
    }
    /**
     * One round trip in flight at a time; the asks arriving meanwhile share the next one, which is
     * sent after their SUBs: a registration storm costs a few pings, not one per key. A round trip
     * the link never answers ends when the client finds the link dead (it rejects waiting pongs).
     */
    let inFlight: Promise<void> | undefined
    let next: Promise<void> | undefined
    const start = (conn: NatsConnection): Promise<void> => {
      const p: Promise<void> = conn.flush().catch(() => {}).finally(() => {
        if (inFlight === p) inFlight = undefined
      })
      inFlight = p
      return p
    }
    const roundTrip = (conn: NatsConnection): Promise<void> => {
      if (inFlight === undefined) return start(conn)
      next ??= inFlight.then(() => {
        next = undefined
        return start(conn)
      })
      return next
    }
    const registry = makeRegistry({
      onFirst: open,
      onLast: (subject) => {
        const sub = subs.get(subject)
        subs.delete(subject)
        if (sub !== undefined && nc !== undefined && !nc.isClosed()) sub.unsubscribe()
      }
    })

    const attempt = Effect.tryPromise(() =>
      connect({
        servers: [...options.servers],
        name: options.name,
        // A node's own publications are not sent back to it: its local sessions were served before it published.
        noEcho: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: RECONNECT_WAIT_MILLIS,
        pingInterval: options.pingIntervalMillis,
        maxPingOut: options.maxPingOut,
        timeout: CONNECT_TIMEOUT_MILLIS
      })
    )
    const watch = (conn: NatsConnection) =>
      Stream.fromAsyncIterable(conn.status(), (e) => e).pipe(
        Stream.runForEach((s) => {
          switch (s.type) {
            case "disconnect":
            case "staleConnection":
              return SubscriptionRef.set(state, "disconnected")
            case "reconnect":
              reconnects++
              return SubscriptionRef.set(state, "connected").pipe(Effect.zipLeft(Effect.logInfo("NATS link back", s.server)))
            case "close":
              return SubscriptionRef.set(state, "closed")
            default:
              return Effect.void
          }
        }),
        Effect.ignore
      )
    let failures = 0
    const connectForever = attempt.pipe(
      // One warning, then one every 60 tries: a node waiting for its bus should not flood its log.
      Effect.tapError((e) =>
        failures++ % 60 === 0 ? Effect.logWarning(`NATS unreachable, retrying: ${String(e.error)}`) : Effect.void
      ),
      Effect.retry(Schedule.spaced(RECONNECT_WAIT_MILLIS)),
      Effect.flatMap((conn) =>
        Effect.gen(function*() {
          nc = conn
          // The client resubscribes by itself after a reconnect; these are the subjects asked for before the first connect.
          for (const subject of registry.subjects()) if (!subs.has(subject)) open(subject)
          yield* SubscriptionRef.set(state, "connected")
          yield* Effect.logInfo(`NATS connected: ${conn.getServer()}`)
          yield* watch(conn)
        })
      )
    )
    yield* Effect.forkScoped(connectForever)
    yield* Effect.addFinalizer(() =>
      nc === undefined
        ? Effect.void
        : Effect.promise(() => nc!.close()).pipe(Effect.interruptible, Effect.timeoutOption("2 seconds"), Effect.asVoid)
    )

    return Broker.of({
      kind: "nats",
      publish: (subject, data) =>
        Effect.sync(() => {
          if (nc === undefined || nc.isClosed()) return
          try {
            nc.publish(subject, data)
          } catch {
            // The bus is lossy by design: whoever misses this push reads storage later.
          }
        }),
      subscribe: registry.add,
      flush: Effect.suspend(() => {
        const conn = nc
        // Down or not yet connected: nothing can be confirmed, and the read on reconnect covers it.
        if (conn === undefined || conn.isClosed()) return Effect.void
        return SubscriptionRef.get(state).pipe(
          Effect.flatMap((s) =>
            s !== "connected"
              ? Effect.void
              : Effect.tryPromise(() => roundTrip(conn)).pipe(
                Effect.timeoutOption(FLUSH_TIMEOUT_MILLIS),
                Effect.ignore
              )
          )
        )
      }),
      state: SubscriptionRef.get(state),
      states: state.changes,
      reconnects: Effect.sync(() => reconnects)
    })
  })

export const layer = (options: NatsOptions): Layer.Layer<Broker> => Layer.scoped(Broker, make(options))

/** NATS when `NATS_URL` is set, else the one-node bus. */
export const layerFromConfig: Layer.Layer<Broker, never, NodeConfig | NodeIdentity> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const identity = yield* NodeIdentity
    return Option.match(cfg.natsUrl, {
      onNone: () => layerMemory,
      onSome: (url) =>
        layer({
          servers: url.split(",").map((s) => s.trim()).filter((s) => s.length > 0),
          name: identity.id,
          pingIntervalMillis: cfg.natsPingIntervalMillis,
          maxPingOut: cfg.natsMaxPingOut
        })
    })
  })
)
