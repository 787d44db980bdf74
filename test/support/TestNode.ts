import { ed25519 } from "@noble/curves/ed25519.js"
import { Clock, Effect, Layer, Queue, TestClock, TestContext, TestServices } from "effect"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Crypto from "../../src/crypto/Crypto.ts"
import * as NodeKey from "../../src/crypto/NodeKey.ts"
import type { L1 } from "../../src/l1/L1.ts"
import * as LocalL1 from "../../src/l1/LocalL1.ts"
import type { PipelineStore } from "../../src/l2ps/PipelineStore.ts"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import { NodeCoreInternal } from "../../src/node/NodeCore.ts"
import * as SqlStores from "../../src/node/SqlStores.ts"
import * as Migrations from "../../src/storage/Migrations.ts"
import type { Storage } from "../../src/storage/Storage.ts"
import { MemoryTransport, type MemorySocket } from "../../src/transport/MemoryTransport.ts"
import * as MemoryTransportLayer from "../../src/transport/MemoryTransport.ts"
import * as ValidatorPool from "../../src/validators/ValidatorPool.ts"
import { pgliteLayer } from "./TestDatabase.ts"

export type Frame = { type: string; payload: any; timestamp: number; requestId?: string | number }

const DAY = 86_400_000

/** A fresh in-memory PGlite with the schema applied. */
export const migratedPglite = () => Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(pgliteLayer()))

export const TEST_SEED = new Uint8Array(32).fill(7)

/**
 * The node's ports over in-memory connections and a fresh PGlite, with its own configuration; the
 * embedded local L1 unless the scenario brings its own.
 */
export const testPorts = (
  config: Parameters<typeof NodeConfig.make>[0] = {},
  l1: Layer.Layer<L1, never, SqlClient.SqlClient | NodeConfig.NodeConfig | Crypto.Crypto> = LocalL1.layer,
  sql: Layer.Layer<SqlClient.SqlClient, unknown> = pgliteLayer(),
  storage?: Layer.Layer<Storage, never, SqlClient.SqlClient>,
  pipeline?: Layer.Layer<PipelineStore, never, SqlClient.SqlClient>
) =>
  Layer.mergeAll(
    l1,
    ValidatorPool.layerInline,
    MemoryTransportLayer.layer,
    NodeKey.layerFromSeed(TEST_SEED)
  ).pipe(
    // The same storage layer as the node's and a host's: migrations first, then the stores (and the
    // local L1, which keeps its chain in the same database).
    Layer.provideMerge(SqlStores.make({ storage, pipeline })),
    Layer.provideMerge(Crypto.layerNative),
    // Block production, batching and the status page's samples wait for a day unless a scenario is
    // about them, so that scenarios moving the clock by minutes do not also step through thousands of
    // blocks and samples (each step of TestClock costs a few ms of real time).
    Layer.provideMerge(NodeConfig.layer({ blockIntervalMillis: DAY, batchIntervalMillis: DAY, statusSampleMillis: DAY, ...config })),
    Layer.provideMerge(sql)
  )

/**
 * `NodeCoreInternal` over `testPorts`, so that scenarios can reach the node's internal services
 * (Peers, RateLimits, …) that a host does not see.
 */
export const testNode = (...args: Parameters<typeof testPorts>) =>
  NodeCoreInternal.pipe(Layer.provideMerge(testPorts(...args)))

/** Runs a scenario on TestClock with its own node; the node stops when the scenario ends. */
export const scenario = <A, E>(
  config: Parameters<typeof NodeConfig.make>[0],
  body: Effect.Effect<A, E, Layer.Layer.Success<ReturnType<typeof testNode>>>,
  l1?: Parameters<typeof testNode>[1],
  storage?: Parameters<typeof testNode>[3]
): Promise<A> => scenarioAt(0, config, body, l1, storage)

/**
 * `scenario` with the clock set to `startAt` before the node starts. A scenario that needs "now" far
 * from 0 (proofs dated well before it) gets it this way for free: moving the clock of a running node
 * steps through every tick of its timers (about 10 ms of real time per second of clock).
 */
export const scenarioAt = <A, E>(
  startAt: number,
  config: Parameters<typeof NodeConfig.make>[0],
  body: Effect.Effect<A, E, Layer.Layer.Success<ReturnType<typeof testNode>>>,
  l1?: Parameters<typeof testNode>[1],
  storage?: Parameters<typeof testNode>[3]
): Promise<A> =>
  Effect.runPromise(
    TestClock.setTime(startAt).pipe(
      Effect.zipRight(body.pipe(Effect.provide(testNode(config, l1, undefined, storage)), Effect.scoped)),
      Effect.provide(TestContext.TestContext)
    ) as Effect.Effect<A, E>
  )

export interface Identity {
  readonly key: string
  readonly secretKey: Uint8Array
  readonly sign: (message: string) => string
}

export const identity = (): Identity => {
  const secretKey = ed25519.utils.randomSecretKey()
  const key = Buffer.from(ed25519.getPublicKey(secretKey)).toString("hex")
  return { key, secretKey, sign: (m) => Buffer.from(ed25519.sign(new TextEncoder().encode(m), secretKey)).toString("hex") }
}

let counter = 0
export const hash = () => `h${(++counter).toString().padStart(12, "0")}`.padEnd(64, "0")
export const encrypted = (text = "x") => ({ ciphertext: Buffer.from(text).toString("base64"), nonce: "bm9uY2Vub25jZQ==" })

/** A scripted client over a memory socket. Waiting for a frame uses the live clock for its timeout. */
export const peer = (id: Identity = identity(), remoteAddress?: string) =>
  Effect.gen(function*() {
    const socket: MemorySocket = yield* (yield* MemoryTransport).connect(remoteAddress)
    let reqs = 0
    // Unsolicited frames that arrived while a request waited for its reply, in order.
    const stash: Array<Frame> = []
    const next = (ms = 3000): Effect.Effect<Frame> =>
      stash.length > 0 ? Effect.succeed(stash.shift()!) : take(ms)
    const take = (ms: number): Effect.Effect<Frame> =>
      TestServices.provideLive(Queue.take(socket.frames).pipe(
        Effect.timeoutFail({ duration: ms, onTimeout: () => new Error("no frame within " + ms + " ms") }),
        Effect.map((t) => JSON.parse(t) as Frame),
        Effect.orDie
      ))
    /** Asserts that nothing arrives for a short while (live time). */
    const nothing = (ms = 100) =>
      stash.length > 0 ? Effect.die(new Error("unexpected frame: " + JSON.stringify(stash[0]))) : TestServices.provideLive(Queue.take(socket.frames).pipe(
        Effect.timeout(ms),
        Effect.flatMap((t) => Effect.die(new Error("unexpected frame: " + t))),
        Effect.catchTag("TimeoutException", () => Effect.void)
      ))
    const frame = (type: string, payload: unknown, extra: Record<string, unknown> = {}) =>
      Effect.flatMap(Clock.currentTimeMillis, (timestamp) =>
        socket.send(JSON.stringify({ type, payload, timestamp, requestId: `r${++reqs}`, ...extra })))
    /** Sends a request and returns its reply; unsolicited frames before it are kept for `next`. */
    const request = (type: string, payload: unknown, extra: Record<string, unknown> = {}) =>
      Effect.gen(function*() {
        const requestId = `r${reqs + 1}`
        yield* frame(type, payload, extra)
        while (true) {
          const reply = yield* take(3000)
          if (reply.requestId === requestId) return reply
          if (reply.requestId !== undefined) {
            return yield* Effect.die(new Error(`expected a reply to ${requestId}, got ${JSON.stringify(reply)}`))
          }
          stash.push(reply)
        }
      })
    const register = (opts: { l2psUid?: string; capabilities?: Array<string>; at?: number } = {}) =>
      Effect.gen(function*() {
        // Each proof of a key needs its own timestamp (replays are refused), so the clock moves 1 ms.
        if (opts.at === undefined) yield* TestClock.adjust(1)
        const timestamp = opts.at ?? (yield* Clock.currentTimeMillis)
        return yield* request("register", {
          publicKey: id.key,
          l2psUid: opts.l2psUid ?? "default",
          proof: id.sign(`register:${id.key}:${timestamp}`),
          ...(opts.capabilities ? { capabilities: opts.capabilities } : {})
        }, { timestamp })
      })
    const sendTo = (to: string, messageHash = hash(), text = "x") =>
      request("send", { to, encrypted: encrypted(text), messageHash })
    const history = (peerKey: string, opts: { before?: number; limit?: number } = {}) =>
      Effect.gen(function*() {
        yield* TestClock.adjust(1)
        const timestamp = yield* Clock.currentTimeMillis
        return yield* request("history", { peerKey, proof: id.sign(`history:${peerKey}:${timestamp}`), ...opts }, { timestamp })
      })
    return { id, key: id.key, socket, next, nothing, frame, request, register, sendTo, history }
  })
