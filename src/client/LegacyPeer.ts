/**
 * The legacy signaling client on Effect (PROTOCOL-REFERENCE.md §1, §3.3; docs/PROTOCOL.md's rules on the legacy server),
 * wrapped by `MessagingPeer.ts` in the 2.9.1 SDK's Promise API. Unlike the SDK it really reconnects:
 * after any drop it backs off (1 s doubling to 30 s, 10 attempts), registers again with a fresh
 * ML-DSA proof, then sends what was asked meanwhile.
 *
 * Replies carry no id: the server answers each request with exactly one frame, in order, and a
 * relayed `message` gets no answer unless it is refused or queued. So the requests in flight form a
 * FIFO; a reply goes to the oldest request that can take it, and a `message` still at the head when
 * another request's reply (or an error a `message` cannot get) arrives was relayed silently.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberHandle from "effect/FiberHandle"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Link from "./internal/Link.ts"
import * as ReconnectingLink from "./internal/ReconnectingLink.ts"
import { supervised } from "./internal/supervise.ts"
import { challengeProof, decryptSerialized, encryptSerialized, type LegacyKeys, registrationProof } from "./MlKemAes.ts"
import { type ReconnectOptions, reconnectOptions } from "./Reconnect.ts"
import { decodeLegacyPayload, type LegacyServerFrameType } from "../domain/LegacyServerFrames.ts"
import { type ConnectionState, decodeServerFrame } from "./Wire.ts"

/** A refused or failed legacy request; `message` is the SDK's rejection text (`payload.details`). */
export class LegacyClientError extends Data.TaggedError("LegacyClientError")<{
  readonly type: string
  readonly message: string
}> {}

export interface LegacyFrame {
  readonly type: string
  readonly payload: any
}

export type LegacyEvent =
  /** A decrypted message; `timestamp` (server ms) only on offline deliveries. */
  | { readonly _tag: "Message"; readonly bytes: Uint8Array; readonly fromId: string; readonly timestamp?: number }
  /** Every other frame except `peer_disconnected`, as the SDK hands them to `onMessage`. */
  | { readonly _tag: "Frame"; readonly frame: LegacyFrame }
  | { readonly _tag: "PeerDisconnected"; readonly peerId: string }
  | { readonly _tag: "ServerQuestion"; readonly question: unknown; readonly questionId: string }
  | { readonly _tag: "Error"; readonly type: string; readonly details: string }
  | { readonly _tag: "Registered"; readonly reconnect: boolean }
  | { readonly _tag: "ConnectionState"; readonly state: ConnectionState }
  | { readonly _tag: "Retrying"; readonly attempt: number; readonly delayMillis: number }

export interface LegacyPeerConfig {
  readonly serverUrl: string
  readonly clientId: string
  /** ML-KEM-768 (receive) and ML-DSA-65 (proof) keys, e.g. `legacyKeysFromSeed(masterSeed)`. */
  readonly keys: LegacyKeys
  readonly reconnect?: Partial<ReconnectOptions> | undefined
  /** ms; SDK: 10000 for opening and for each reply */
  readonly timeouts?: Partial<{ readonly connect: number; readonly request: number }> | undefined
  /** Called synchronously, in order, for every event. */
  readonly onEvent?: ((event: LegacyEvent, connected: boolean) => void) | undefined
  /**
   * The node's ML-DSA public key (hex), when known: a `challenge` naming another node is not answered.
   * Without it the client signs the key the server names, which still binds the proof to that node.
   */
  readonly nodeKeyHex?: string | undefined
}

export interface WaitOptions {
  readonly timeout?: number
  readonly filterFn?: (frame: LegacyFrame) => boolean
}

export interface LegacyPeerShape {
  /** Opens and registers; from then on reconnects and registers again by itself. */
  readonly connect: Effect.Effect<void, LegacyClientError>
  readonly disconnect: Effect.Effect<void>
  /** Registers (again) with a fresh proof and waits for the answer. */
  readonly registerAndWait: Effect.Effect<void, LegacyClientError>
  readonly discoverPeers: Effect.Effect<ReadonlyArray<string>, LegacyClientError>
  readonly requestPublicKey: (peerId: string) => Effect.Effect<Uint8Array, LegacyClientError>
  /** Looks up the target's key, encrypts (ml-kem-aes) and sends; no acknowledgement exists. */
  readonly sendMessage: (targetId: string, message: string | Uint8Array) => Effect.Effect<void, LegacyClientError>
  readonly sendToServerAndWait: (frame: LegacyFrame, expectedType: string, options?: WaitOptions) => Effect.Effect<any, LegacyClientError>
  /** Writes a frame with no reply expected (e.g. `peer_response`). */
  readonly sendToServer: (frame: LegacyFrame) => Effect.Effect<void, LegacyClientError>
  readonly events: Stream.Stream<LegacyEvent>
  readonly subscribe: Effect.Effect<Queue.Dequeue<LegacyEvent>, never, Scope.Scope>
  readonly isConnected: Effect.Effect<boolean>
}

export class LegacyPeer extends Context.Tag("im-client/LegacyPeer")<LegacyPeer, LegacyPeerShape>() {}

interface Op {
  readonly frame: LegacyFrame
  readonly answers: ReadonlyArray<string>
  /** A `message`: it may get no reply at all. */
  readonly optional: boolean
  /** Sent again after a reconnect if it was in flight (idempotent lookups). */
  readonly resend: boolean
  readonly filter: ((frame: LegacyFrame) => boolean) | undefined
  readonly deferred: Deferred.Deferred<unknown, LegacyClientError>
}

const UNSOLICITED = new Set(["message", "peer_disconnected", "server_question"])

/**
 * The refusals a `message` can still get once its target's key was just looked up (storage, the
 * offline cap, rate limits). Any other error after a `message` answers a later request: the message
 * itself was relayed, silently.
 */
const MESSAGE_ERRORS = new Set(["INTERNAL_ERROR", "RATE_LIMITED"])

/** The close code of a session whose clientId a newer registration took over (SECURITY.md #4). */
const REPLACED = 4001

const errorTypeOf = (payload: unknown): string =>
  Predicate.isRecord(payload) && typeof payload.errorType === "string" ? payload.errorType : "INTERNAL_ERROR"

export const make = (config: LegacyPeerConfig): Effect.Effect<LegacyPeerShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeouts = { connect: 10_000, request: 10_000, ...config.timeouts }
    const hub = yield* PubSub.bounded<LegacyEvent>(4096)
    const loop = yield* FiberHandle.make<void, never>()
    const st = {
      link: undefined as Link.Link | undefined,
      registered: false,
      everRegistered: false,
      running: false,
      inflight: [] as Array<Op>,
      waiting: [] as Array<Op>,
      opened: undefined as Deferred.Deferred<void> | undefined,
      connecting: undefined as Deferred.Deferred<void, LegacyClientError> | undefined
    }
    const fail = (type: string, message: string) => new LegacyClientError({ type, message })
    const emit = (event: LegacyEvent) =>
      Effect.suspend(() => {
        config.onEvent?.(event, st.link !== undefined)
        return PubSub.publish(hub, event)
      }).pipe(Effect.asVoid)

    const write = (op: Op) =>
      Effect.gen(function*() {
        if (st.link === undefined || !(yield* st.link.send(JSON.stringify(op.frame)))) {
          st.waiting.push(op)
          return
        }
        st.inflight.push(op)
      })

    const newOp = (frame: LegacyFrame, answers: ReadonlyArray<string>, o: { optional?: boolean; resend?: boolean; filter?: ((f: LegacyFrame) => boolean) | undefined } = {}) =>
      Effect.map(Deferred.make<unknown, LegacyClientError>(), (deferred): Op => ({
        frame,
        answers,
        optional: o.optional ?? false,
        resend: o.resend ?? false,
        filter: o.filter,
        deferred
      }))

    /** Queues `op` until registered (while reconnecting by itself), or writes it now. */
    const submit = (op: Op) =>
      Effect.gen(function*() {
        if (st.registered) return yield* write(op)
        if (st.running) return void st.waiting.push(op)
        return yield* Deferred.fail(op.deferred, fail("NOT_CONNECTED", "Not connected. Call connect() first."))
      })

    const awaitOp = (op: Op, timeoutMs: number) =>
      Deferred.await(op.deferred).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeoutMs),
          onTimeout: () => fail("TIMEOUT", `Timeout waiting for response of type: ${op.answers[0]}`)
        }),
        Effect.ensuring(Effect.sync(() => {
          st.inflight = st.inflight.filter((o) => o !== op)
          st.waiting = st.waiting.filter((o) => o !== op)
        }))
      )

    const ask = <A>(frame: LegacyFrame, answer: string, o: { resend?: boolean; filter?: ((f: LegacyFrame) => boolean) | undefined; timeout?: number } = {}) =>
      Effect.gen(function*() {
        const op = yield* newOp(frame, [answer], o)
        yield* submit(op)
        return (yield* awaitOp(op, o.timeout ?? timeouts.request)) as A
      })

    /** The reply goes to the oldest request that can take it; silent `message`s before it succeeded. */
    const answer = (frame: LegacyFrame) =>
      Effect.gen(function*() {
        while (st.inflight.length > 0) {
          const op = st.inflight[0]!
          const takes = frame.type === "error"
            ? !op.optional || st.inflight.length === 1 || MESSAGE_ERRORS.has(errorTypeOf(frame.payload))
            : op.answers.includes(frame.type) && (op.filter === undefined || op.filter(frame))
          if (takes) {
            st.inflight.shift()
            if (frame.type !== "error") return yield* Deferred.succeed(op.deferred, frame.payload)
            const details = Predicate.isRecord(frame.payload) && typeof frame.payload.details === "string" ? frame.payload.details : "Server error"
            return yield* Deferred.fail(op.deferred, fail(errorTypeOf(frame.payload), details))
          }
          if (!op.optional) return
          st.inflight.shift()
          yield* Deferred.succeed(op.deferred, undefined)
        }
      })

    // The legacy server writes JSON text only: a binary frame is nothing it sent.
    const dispatch = (text: Link.Frame) =>
      Effect.gen(function*() {
        if (typeof text !== "string") return
        const decoded = decodeServerFrame(text)
        if (Option.isNone(decoded)) return
        const frame: LegacyFrame = { type: decoded.value.type, payload: decoded.value.payload ?? {} }
        const p = Predicate.isRecord(frame.payload) ? frame.payload : {}
        const malformed = (details: string) => emit({ _tag: "Error", type: "INVALID_MESSAGE", details })
        if (frame.type === "peer_disconnected") {
          const gone = decodeLegacyPayload("peer_disconnected", frame.payload)
          return yield* gone._tag === "Right" ? emit({ _tag: "PeerDisconnected", peerId: gone.right.peerId }) : malformed(gone.left)
        }
        if (frame.type === "message") {
          const m = decodeLegacyPayload("message", frame.payload)
          if (m._tag === "Left") return yield* malformed(m.left)
          const { fromId, timestamp } = m.right
          const opened = Effect.try(() => decryptSerialized(config.keys.kem.secretKey, m.right.message as never))
          const bytes = yield* Effect.either(opened)
          if (bytes._tag === "Left") {
            return yield* emit({ _tag: "Error", type: "DECRYPTION_ERROR", details: `message from ${fromId} could not be decrypted` })
          }
          return yield* emit({ _tag: "Message", bytes: bytes.right, fromId, ...(timestamp === undefined ? {} : { timestamp }) })
        }
        if (!UNSOLICITED.has(frame.type)) yield* answer(frame)
        yield* emit({ _tag: "Frame", frame })
        if (frame.type === "server_question") {
          const q = decodeLegacyPayload("server_question", frame.payload)
          yield* q._tag === "Right"
            ? emit({ _tag: "ServerQuestion", question: q.right.question, questionId: q.right.questionId })
            : malformed(q.left)
        }
        if (frame.type === "error") {
          yield* emit({
            _tag: "Error",
            type: typeof p.errorType === "string" ? p.errorType : "INTERNAL_ERROR",
            details: typeof p.details === "string" ? p.details : ""
          })
        }
      })

    const clientId = config.clientId.normalize("NFKC")
    const registerFrame = (challenge?: { readonly nonce: string; readonly node: string }): LegacyFrame => ({
      type: "register",
      payload: {
        clientId: config.clientId,
        publicKey: Array.from(config.keys.kem.publicKey),
        verification: registrationProof(config.keys),
        ...(challenge === undefined ? {} : { challenge: challengeProof(config.keys, { ...challenge, clientId }) })
      }
    })

    /**
     * Registration with the challenge extension: `challenge`, then `register` signing its nonce, so that a
     * captured frame registers nowhere else and never again. A node without the extension answers
     * "Unknown message type": it then gets the 2.9.1 registration.
     */
    const registration = (request: (frame: LegacyFrame, answer: string) => Effect.Effect<unknown, LegacyClientError>) =>
      Effect.gen(function*() {
        const answered = yield* Effect.either(request({ type: "challenge", payload: {} }, "challenge"))
        if (answered._tag === "Left") {
          const e = answered.left
          if (e.type === "INVALID_MESSAGE" && e.message.startsWith("Unknown message type")) {
            return yield* request(registerFrame(), "register")
          }
          return yield* Effect.fail(e)
        }
        const decoded = decodeLegacyPayload("challenge", answered.right)
        if (decoded._tag === "Left") return yield* fail("INVALID_MESSAGE", "Malformed challenge from the server")
        const c = decoded.right
        if (config.nodeKeyHex !== undefined && c.node.toLowerCase() !== config.nodeKeyHex.toLowerCase()) {
          return yield* fail("NODE_MISMATCH", "The server's challenge names another node than the one configured")
        }
        return yield* request(registerFrame({ nonce: c.nonce, node: c.node }), "register")
      })

    const setState = (state: ConnectionState) => emit({ _tag: "ConnectionState", state })

    const hooks: ReconnectingLink.Hooks<void, LegacyClientError> = {
      url: config.serverUrl,
      reconnect: reconnectOptions(config.reconnect),
      inboxCapacity: 100_000,
      opened: (link) =>
        Effect.gen(function*() {
          st.link = link
          if (st.opened !== undefined) yield* Deferred.succeed(st.opened, undefined)
        }),
      handshake: (link) =>
        Effect.asVoid(registration((frame, answer) =>
          Effect.gen(function*() {
            const op = yield* newOp(frame, [answer])
            if (!(yield* link.send(JSON.stringify(op.frame)))) return yield* fail("DISCONNECTED", "Disconnected")
            st.inflight.push(op)
            return yield* Effect.raceFirst(
              awaitOp(op, timeouts.request),
              Effect.zipRight(Deferred.await(link.closed), Effect.fail(fail("DISCONNECTED", "Disconnected")))
            )
          })
        )),
      registered: (_, reconnect) =>
        Effect.gen(function*() {
          st.registered = true
          st.everRegistered = true
          yield* emit({ _tag: "Registered", reconnect })
          yield* setState("connected")
          const queued = st.waiting
          st.waiting = []
          for (const op of queued) yield* write(op)
          if (st.connecting !== undefined) yield* Deferred.succeed(st.connecting, undefined)
        }),
      refused: (e) =>
        Effect.gen(function*() {
          if (e.type === "DISCONNECTED") return true
          if (!st.everRegistered && st.connecting !== undefined) {
            yield* Deferred.fail(st.connecting, e)
            return false
          }
          yield* emit({ _tag: "Error", type: "INTERNAL_ERROR", details: `Re-registration failed after reconnect: ${e.message}` })
          return true
        }),
      dispatch,
      closed: (opened, info) =>
        Effect.gen(function*() {
          st.link = undefined
          st.registered = false
          // Lookups in flight are asked again; a `message` in flight may or may not have been relayed.
          const lost = st.inflight
          st.inflight = []
          for (const op of lost) {
            if (op.resend) st.waiting.push(op)
            else yield* Deferred.fail(op.deferred, fail("DISCONNECTED", "Disconnected"))
          }
          if (opened) yield* setState("disconnected")
          if (info?.code !== REPLACED) return true
          // Another connection registered this id since: coming back would take it over in turn.
          st.running = false
          yield* emit({ _tag: "Error", type: "SESSION_REPLACED", details: info.reason || "Replaced by a newer registration of the same client ID" })
          yield* failAll
          return false
        }),
      retrying: (delay, attempt) =>
        Effect.zipRight(setState("reconnecting"), emit({ _tag: "Retrying", attempt, delayMillis: Duration.toMillis(delay) })),
      gaveUp: Effect.gen(function*() {
        st.running = false
        yield* emit({ _tag: "Error", type: "CONNECTION_ERROR", details: `Gave up reconnecting to ${config.serverUrl}` })
        yield* failAll
      })
    }

    const failAll = Effect.suspend(() => {
      const all = [...st.inflight, ...st.waiting]
      st.inflight = []
      st.waiting = []
      return Effect.forEach(all, (op) => Deferred.fail(op.deferred, fail("DISCONNECTED", "Disconnected")), { discard: true })
    })

    const stop = Effect.gen(function*() {
      const wasUp = st.link !== undefined || st.running
      st.running = false
      yield* FiberHandle.clear(loop)
      st.link = undefined
      st.registered = false
      yield* failAll
      if (wasUp) yield* setState("disconnected")
    })

    const connect = Effect.gen(function*() {
      yield* stop
      const opened = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void, LegacyClientError>()
      st.opened = opened
      st.connecting = done
      st.running = true
      st.everRegistered = false
      yield* setState("reconnecting")
      yield* FiberHandle.run(loop, supervised("reconnect", ReconnectingLink.run(hooks)).pipe(Effect.ensuring(Effect.sync(() => void (st.running = false)))))
      yield* Deferred.await(opened).pipe(
        Effect.timeoutFail({ duration: Duration.millis(timeouts.connect), onTimeout: () => fail("CONNECTION_ERROR", "Connection timeout") })
      )
      yield* Deferred.await(done)
    }).pipe(Effect.tapError(() => stop))

    yield* Effect.addFinalizer(() => stop)

    /** A reply's payload through its Schema; a malformed one fails the request. */
    const decodeReply = <T extends LegacyServerFrameType>(type: T) => (payload: unknown) =>
      Either.mapLeft(decodeLegacyPayload(type, payload), (details) => fail("INVALID_MESSAGE", details))

    const requestPublicKey = (peerId: string) =>
      ask<unknown>({ type: "request_public_key", payload: { targetId: peerId } }, "public_key_response", {
        resend: true,
        filter: (f) => Predicate.isRecord(f.payload) && f.payload.peerId === peerId
      }).pipe(Effect.flatMap(decodeReply("public_key_response")), Effect.map((r) => new Uint8Array(r.publicKey)))

    return {
      connect,
      disconnect: stop,
      registerAndWait: Effect.asVoid(registration((frame, answer) => ask(frame, answer))),
      discoverPeers: ask<unknown>({ type: "discover", payload: {} }, "discover", { resend: true }).pipe(
        Effect.flatMap(decodeReply("discover")),
        Effect.map((r) => r.peers)
      ),
      requestPublicKey,
      sendMessage: (targetId, message) =>
        Effect.gen(function*() {
          const key = yield* requestPublicKey(targetId)
          const sealed = yield* Effect.try({
            try: () => encryptSerialized(key, message),
            catch: () => fail("INVALID_PUBLIC_KEY", `The public key of ${targetId} is not an ML-KEM-768 key`)
          })
          const op = yield* newOp({ type: "message", payload: { targetId, message: sealed } }, ["message_queued"], { optional: true })
          // Resolves once written or queued, as the SDK; a refusal or `message_queued` comes as an event.
          yield* submit(op)
        }),
      sendToServerAndWait: (frame, expectedType, o = {}) => ask(frame, expectedType, { filter: o.filterFn, ...(o.timeout === undefined ? {} : { timeout: o.timeout }) }),
      sendToServer: (frame) =>
        Effect.gen(function*() {
          const op = yield* newOp(frame, [], { optional: true })
          if (st.link !== undefined) return yield* write(op)
          if (!st.running) return yield* fail("NOT_CONNECTED", "Not connected. Call connect() first.")
          st.waiting.push(op)
        }),
      events: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub),
      isConnected: Effect.sync(() => st.link !== undefined)
    } satisfies LegacyPeerShape
  })

export const layer = (config: LegacyPeerConfig): Layer.Layer<LegacyPeer> => Layer.scoped(LegacyPeer, make(config))
