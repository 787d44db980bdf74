/**
 * The L2PS client on Effect: the SDK's `L2PSMessagingPeer` semantics (PROTOCOL-REFERENCE.md §3.2) plus
 * this node's extensions (docs/PROTOCOL.md rule 10 and its inclusion proofs). `L2PSMessagingPeer.ts` wraps it in the SDK's Promise
 * API. Time and request ids come from `Clock` and `Random`; reconnection runs on a `Schedule`.
 *
 * Where it differs from the SDK, on purpose:
 * - requests made while the client reconnects by itself wait for the re-registration (within their
 *   timeout) instead of failing with "Not registered", and requests in flight when the socket drops
 *   are sent again once re-registered (sends are idempotent by `messageHash`, docs/PROTOCOL.md rule 7);
 * - a refused first registration stops the client (the SDK keeps an unregistered socket open);
 * - giving up after the last attempt is reported as an `INTERNAL_ERROR` event.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberHandle from "effect/FiberHandle"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ReconnectingLink from "./internal/ReconnectingLink.ts"
import { supervise, supervised } from "./internal/supervise.ts"
import type * as Link from "./internal/Link.ts"
import { type ReconnectOptions, reconnectOptions } from "./Reconnect.ts"
import type { PrekeysPublishPayload } from "../domain/Prekeys.ts"
import {
  type AckResponsePayload,
  type ConnectionState,
  decodePayload,
  decodeAnyServerFrame,
  encodeClientFrame,
  type ErrorPayload,
  errorOf,
  type HistoryPayload,
  type IncomingFrame,
  type IncomingMessagePayload,
  isServerFrameType,
  type OutgoingFrame,
  type PayloadOf,
  type ProofResponsePayload,
  type ReceiptPayload,
  type RegisteredPayload,
  type SendResult,
  type SerializedEncryptedMessage,
  type ServerFrameType
} from "./Wire.ts"

/** Acknowledgements waiting to be sent at once. */
const ACKS_MAX = 4096

/** Pages of `discover` followed at most (a node sends up to 1,000 keys a page by default). */
const DISCOVER_PAGES_MAX = 100

/**
 * A refused or failed request; `message` is the SDK's rejection text, except for a connection that
 * could not be made, whose message names the URL and what happened (`connectError`).
 */
export class L2psError extends Data.TaggedError("L2psError")<{
  /**
   * a server error code, or TIMEOUT / NOT_REGISTERED / DISCONNECTED, or MALFORMED_FRAME (the reply
   * does not decode with its Schema, src/domain/ServerFrames.ts), or for `connect`
   * CONNECTION_REFUSED / CONNECT_TIMEOUT / CONNECTION_CLOSED / NO_WEBSOCKET (see `connectError`)
   */
  readonly code: string
  readonly message: string
}> {}

export type PeerEvent =
  | { readonly _tag: "Message"; readonly message: IncomingMessagePayload }
  | { readonly _tag: "PeerJoined"; readonly publicKey: string }
  | { readonly _tag: "PeerLeft"; readonly publicKey: string }
  | { readonly _tag: "Error"; readonly error: ErrorPayload }
  | { readonly _tag: "Delivered"; readonly receipt: ReceiptPayload }
  | { readonly _tag: "Registered"; readonly registered: RegisteredPayload; readonly reconnect: boolean }
  | { readonly _tag: "ConnectionState"; readonly state: ConnectionState }
  /** The socket is down; the next attempt (1-based) starts after `delayMillis`. */
  | { readonly _tag: "Retrying"; readonly attempt: number; readonly delayMillis: number }

export interface Snapshot {
  readonly connected: boolean
  readonly registered: boolean
  readonly peers: ReadonlyArray<string>
}

export interface L2psPeerConfig {
  /** ws URL of the L2PS messaging server */
  readonly serverUrl: string
  /** ed25519 public key, 64 hex, sent verbatim */
  readonly publicKey: string
  readonly l2psUid: string
  /** hex ed25519 signature of the UTF-8 bytes of `message` */
  readonly signFn: (message: string) => string | Promise<string>
  /** Put in `register` (docs/PROTOCOL.md rule 10), e.g. `["ack"]`. */
  readonly capabilities?: ReadonlyArray<string> | undefined
  /** Acknowledge every received message once its handlers ran (implies the `ack` capability). */
  readonly autoAck?: boolean | undefined
  /**
   * Ask for binary frames (capability `"binary"`, docs/PROTOCOL.md "Binary frames"): once the node grants
   * it, `send` and `ack` go in binary and the node writes its hot frames in binary. Off by default here
   * (the SDK's clients send what the reference node reads); the messenger turns it on.
   */
  readonly binaryFrames?: boolean | undefined
  /**
   * Ask the node not to answer `ack`s (capability `"quiet_acks"`): once granted, `ack` resolves when the
   * frame is written, with no hashes confirmed (an `ack` that is lost only means the message comes again).
   */
  readonly quietAcks?: boolean | undefined
  readonly reconnect?: Partial<ReconnectOptions> | undefined
  /** Called synchronously, in order, for every event, with the state after it (before the streams see it). */
  readonly onEvent?: ((event: PeerEvent, state: Snapshot) => void) | undefined
  /** Timeouts in ms (SDK: connect 10000, requests 10000, send 15000). */
  readonly timeouts?: Partial<{ readonly connect: number; readonly request: number; readonly send: number }> | undefined
  /**
   * Extension (SECURITY.md 6): sign register and history proofs bound to the network and the node, so
   * that a proof seen by this node is worth nothing on another. The node's id is asked with `node_info`
   * on every connection unless `nodeId` pins it; a node without `node_info` gets the reference's proofs.
   * Off by default: the SDK's clients send no frame the reference node does not know.
   */
  readonly boundProofs?: boolean | undefined
  /** The node's id (SHA-256 of its ML-DSA-65 key, hex) to sign for; implies `boundProofs`. */
  readonly nodeId?: string | undefined
}

export interface L2psPeerShape {
  readonly config: L2psPeerConfig
  /** Opens, registers, and keeps reconnecting until `disconnect`; resolves with `registered`. */
  readonly connect: Effect.Effect<RegisteredPayload, L2psError>
  readonly disconnect: Effect.Effect<void>
  readonly send: (to: string, encrypted: SerializedEncryptedMessage, messageHash: string) => Effect.Effect<SendResult, L2psError>
  readonly history: (peerKey: string, options?: { readonly before?: number; readonly limit?: number }) => Effect.Effect<HistoryPayload, L2psError>
  readonly discover: Effect.Effect<ReadonlyArray<string>, L2psError>
  readonly requestPublicKey: (targetId: string) => Effect.Effect<string | null, L2psError>
  /** Extension: acknowledge messages (needs the `ack` capability to matter). */
  readonly ack: (
    messageHashes: ReadonlyArray<string>,
    /** Capability "receipts": a sealed receipt (base64) per message hash, for its sender. */
    receipts?: Readonly<Record<string, string>>
  ) => Effect.Effect<AckResponsePayload, L2psError>
  /** Extension: the inclusion proof of a message (check it with `verifyProof`). */
  /** `from` (extension) names the sender of a received message: another sender may use the same hash. */
  readonly proofRequest: (messageHash: string, from?: string) => Effect.Effect<ProofResponsePayload, L2psError>
  /** Extension (docs/PROTOCOL.md, "Invites"): store an invite record sealed and signed by this key. */
  readonly inviteStore: (invite: {
    readonly inviteId: string
    readonly record: string
    readonly expiresAt: number
    readonly oneTime: boolean
    readonly signature: string
  }) => Effect.Effect<PayloadOf<"invite_stored">, L2psError>
  /** The record of an invite id (`INVITE_NOT_FOUND` when the node has none); a one-time one is gone after. */
  readonly inviteFetch: (inviteId: string) => Effect.Effect<PayloadOf<"invite_response">, L2psError>
  readonly inviteDelete: (inviteId: string) => Effect.Effect<PayloadOf<"invite_deleted">, L2psError>
  /** Publishes this device's prekeys (docs/PROTOCOL.md, "Prekeys"); the answer counts the one-time keys the node holds. */
  readonly prekeysPublish: (payload: PrekeysPublishData) => Effect.Effect<PayloadOf<"prekeys_published">, L2psError>
  readonly prekeysCount: (deviceId: number) => Effect.Effect<PayloadOf<"prekeys_count_response">, L2psError>
  /** Every device's bundle of `publicKey` (each takes one one-time key of each kind on the node). */
  readonly bundleFetch: (publicKey: string) => Effect.Effect<PayloadOf<"bundle_response">, L2psError>
  readonly devices: Effect.Effect<PayloadOf<"devices_response">, L2psError>
  readonly deviceRemove: (deviceId: number) => Effect.Effect<PayloadOf<"device_removed">, L2psError>
  /** Every event from now on; subscribe before `connect` to see everything. */
  readonly events: Stream.Stream<PeerEvent>
  readonly subscribe: Effect.Effect<Queue.Dequeue<PeerEvent>, never, Scope.Scope>
  /** The received messages (each `messageHash` once). */
  readonly messages: Stream.Stream<IncomingMessagePayload>
  readonly receipts: Stream.Stream<ReceiptPayload>
  readonly snapshot: Effect.Effect<Snapshot>
}

export class L2psPeer extends Context.Tag("im-client/L2psPeer")<L2psPeer, L2psPeerShape>() {}

interface Pending {
  readonly types: ReadonlyArray<ServerFrameType>
  readonly deferred: Deferred.Deferred<unknown, L2psError>
  readonly build: Effect.Effect<OutgoingFrame, L2psError>
  /** The socket generation it was written on (0: not yet). */
  sentOn: number
  readonly register: boolean
}

const SEEN_MAX = 10_000
/** A node that does not answer `node_info` this fast gets the reference's proofs (within the connect timeout). */
const NODE_INFO_TIMEOUT = 3000
/** The close code of a session evicted by a newer one of the same key (docs/PROTOCOL.md rule 5). */
const EVICTED = 4001

/** What went wrong with the last attempt to connect, when `connect` gives up. */
export type ConnectFailure =
  /** the socket did not open: nothing accepts connections there, or the address does not resolve */
  | { readonly _tag: "Refused" }
  /** no socket opened and registered within the connect timeout */
  | { readonly _tag: "TimedOut"; readonly millis: number }
  /** the server closed the socket before registration was answered */
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

const seconds = (millis: number) => `${millis / 1000}s`

/** The connection error a developer can act on: the URL, what happened, and what to check. */
export const connectError = (url: string, why: ConnectFailure): L2psError => {
  switch (why._tag) {
    case "Refused":
      return new L2psError({
        code: "CONNECTION_REFUSED",
        message: `cannot connect to ${url}: the connection was refused (is a node running there? check the URL and port)`
      })
    case "TimedOut":
      return new L2psError({
        code: "CONNECT_TIMEOUT",
        message: `cannot connect to ${url}: no answer within ${seconds(why.millis)} (connection timed out; a firewall, or not a Demos IM node?)`
      })
    case "Closed":
      return new L2psError({
        code: "CONNECTION_CLOSED",
        message: `cannot connect to ${url}: the server closed the connection (code ${why.code}${why.reason === "" ? "" : `: ${why.reason}`})`
      })
  }
}

export const NO_WEBSOCKET =
  "this runtime has no WebSocket: use Node 22 or later, start Node 20 with --experimental-websocket, or set globalThis.WebSocket (e.g. to the ws package's)"

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0")

export const make = (config: L2psPeerConfig): Effect.Effect<L2psPeerShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeouts = { connect: 10_000, request: 10_000, send: 15_000, ...config.timeouts }
    const asked = [
      ...(config.capabilities ?? []),
      ...(config.autoAck === true ? ["ack"] : []),
      ...(config.binaryFrames === true ? ["binary"] : []),
      ...(config.quietAcks === true ? ["quiet_acks"] : [])
    ]
    const capabilities = config.capabilities === undefined && asked.length === 0 ? undefined : [...new Set(asked)]
    const hub = yield* PubSub.bounded<PeerEvent>(4096)
    const loop = yield* FiberHandle.make<void, never>()
    // Bounded by dropping: an ack that does not fit only means the message is delivered again later,
    // and it is recognised by its hash; blocking here could stall the frame loop the acks wait on.
    const acks = yield* Queue.dropping<string>(ACKS_MAX)

    const st = {
      link: undefined as Link.Link | undefined,
      generation: 0,
      connected: false,
      registered: false,
      /** The node granted `binary` on this socket's registration. */
      binary: false,
      /** The node granted `quiet_acks` on this socket's registration. */
      quietAcks: false,
      everRegistered: false,
      running: false,
      peers: new Set<string>(),
      pending: new Map<string, Pending>(),
      seen: new Set<string>(),
      lastProof: 0,
      /** The node's id while its bound proofs are used (undefined: the reference's proofs). */
      nodeId: config.nodeId as string | undefined,
      connecting: undefined as Deferred.Deferred<RegisteredPayload, L2psError> | undefined,
      /** Why the last attempt of the current `connect` failed. */
      lastFailure: undefined as ConnectFailure | undefined
    }
    const snapshotNow = (): Snapshot => ({ connected: st.connected, registered: st.registered, peers: [...st.peers] })

    const emit = (event: PeerEvent) =>
      Effect.suspend(() => {
        config.onEvent?.(event, snapshotNow())
        return PubSub.publish(hub, event)
      }).pipe(Effect.asVoid)

    const fail = (code: string, message: string) => new L2psError({ code, message })

    // With binary frames, request ids are short (a counter of this client): the SDK's format costs ~25
    // bytes in every request and its reply, a fifth of a binary `ack`.
    let lastRequest = 0
    const requestId = config.binaryFrames === true ? Effect.sync(() => `r${(++lastRequest).toString(36)}`) : Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const hi = yield* Random.nextIntBetween(0, 0x100000)
      const lo = yield* Random.nextIntBetween(0, 0x100000)
      return `req_${now}_${hex(hi, 5)}${hex(lo, 5)}`
    })

    /** Proof timestamps strictly increase, so two proofs in one ms are never taken for a replay. */
    const proofTime = Effect.map(Clock.currentTimeMillis, (now) => (st.lastProof = Math.max(now, st.lastProof + 1)))

    const sign = (message: string) =>
      Effect.tryPromise({
        try: async () => config.signFn(message),
        catch: (e) => fail("INTERNAL_ERROR", `signFn failed: ${e instanceof Error ? e.message : String(e)}`)
      })

    const write = (p: Pending) =>
      Effect.gen(function*() {
        const link = st.link
        if (link === undefined || !(p.register || st.registered)) return
        const frame = yield* p.build.pipe(Effect.either)
        if (frame._tag === "Left") return yield* Deferred.fail(p.deferred, frame.left)
        if (yield* link.send(encodeClientFrame(frame.right, st.binary))) p.sentOn = st.generation
      })

    const await_ = <T extends ServerFrameType>(id: string, p: Pending, timeoutMs: number) =>
      Deferred.await(p.deferred).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeoutMs),
          onTimeout: () => fail("TIMEOUT", `Timeout waiting for ${p.types.join("|")} (${timeoutMs}ms)`)
        }),
        Effect.ensuring(Effect.sync(() => st.pending.delete(id))),
        // `dispatch` settles the deferred only with a payload decoded by the Schema of one of `p.types`.
        Effect.map((payload) => payload as PayloadOf<T>)
      )

    const request = <T extends ServerFrameType>(
      type: string,
      payload: (timestamp: number) => Effect.Effect<Record<string, unknown>, L2psError>,
      types: ReadonlyArray<T>,
      timeoutMs: number,
      register = false
    ) =>
      Effect.gen(function*() {
        if (!register && !st.registered && !(st.running && st.everRegistered)) {
          return yield* fail("NOT_REGISTERED", "Not registered. Call connect() first.")
        }
        const id = yield* requestId
        const build = Effect.gen(function*() {
          const timestamp = type === "history" || type === "register" ? yield* proofTime : yield* Clock.currentTimeMillis
          return { type, payload: yield* payload(timestamp), timestamp, requestId: id }
        })
        const p: Pending = { types, deferred: yield* Deferred.make<unknown, L2psError>(), build, sentOn: 0, register }
        st.pending.set(id, p)
        yield* write(p)
        return yield* await_<T>(id, p, timeoutMs)
      })

    /** The string a proof signs: bound to the network and node (proofVersion 2) once the node's id is known. */
    const proofString = (kind: "register" | "history", subject: string, timestamp: number) =>
      st.nodeId === undefined ? `${kind}:${subject}:${timestamp}` : `${kind}:v2:${config.l2psUid}:${st.nodeId}:${subject}:${timestamp}`
    const proofVersion = () => (st.nodeId === undefined ? {} : { proofVersion: 2 })

    const registerFrame = (timestamp: number) =>
      Effect.map(sign(proofString("register", config.publicKey, timestamp)), (proof) => ({
        publicKey: config.publicKey,
        l2psUid: config.l2psUid,
        proof,
        ...proofVersion(),
        ...(capabilities === undefined ? {} : { capabilities: [...capabilities] })
      }))

    /** Before registering: the node's id for bound proofs; a node that does not know `node_info` gets the reference's. */
    const learnNodeId: Effect.Effect<void, L2psError> = config.nodeId !== undefined || config.boundProofs !== true
      ? Effect.void
      : request("node_info", () => Effect.succeed({}), ["node_info_response"], Math.min(timeouts.request, NODE_INFO_TIMEOUT), true).pipe(
        Effect.map((info) => /^[0-9a-f]{64}$/.test(info.nodeId) ? info.nodeId : undefined),
        // A node without the extension answers "Unknown type" (a reference node may not echo the requestId,
        // hence the timeout too), or something else by that name; only a pinned nodeId makes bound proofs certain.
        Effect.catchIf((e) => e.code === "INVALID_MESSAGE" || e.code === "TIMEOUT" || e.code === "MALFORMED_FRAME", () => Effect.succeed(undefined)),
        Effect.map((nodeId) => void (st.nodeId = nodeId))
      )

    const deliverMessage = (m: PayloadOf<"message">) =>
      Effect.gen(function*() {
        // A hash is unique per sender only: another sender's message with the same hash is another message.
        const id = `${m.from}:${m.messageHash}`
        const fresh = !st.seen.has(id)
        if (fresh) {
          st.seen.add(id)
          if (st.seen.size > SEEN_MAX) st.seen.delete(st.seen.values().next().value!)
          yield* emit({ _tag: "Message", message: m })
        }
        // A copy of what another device of this key sent is no delivery: there is nothing to acknowledge.
        if (config.autoAck === true && m.to === undefined) yield* Queue.offer(acks, m.messageHash)
      })

    /** A pushed frame of a known type whose payload does not decode: reported, not acted upon. */
    const malformed = (type: ServerFrameType, message: string) =>
      emit({ _tag: "Error", error: { code: "MALFORMED_FRAME", message, details: type } })

    const dispatch = (data: Link.Frame) =>
      Effect.gen(function*() {
        const decoded = decodeAnyServerFrame(data)
        if (Option.isNone(decoded)) return
        const frame: IncomingFrame = decoded.value
        // Frames of types this client does not know are ignored, as the SDK does.
        if (!isServerFrameType(frame.type)) return
        const type = frame.type
        const p = frame.requestId === undefined ? undefined : st.pending.get(frame.requestId)
        if (p !== undefined && frame.requestId !== undefined) {
          if (p.types.includes(type)) {
            st.pending.delete(frame.requestId)
            const reply = decodePayload(type, frame.payload)
            return yield* reply._tag === "Right"
              ? Deferred.succeed(p.deferred, reply.right)
              : Deferred.fail(p.deferred, fail("MALFORMED_FRAME", reply.left.message))
          }
          if (frame.type === "error") {
            st.pending.delete(frame.requestId)
            const e = errorOf(frame.payload)
            return yield* Deferred.fail(p.deferred, fail(String(e.code), e.message))
          }
        }
        switch (type) {
          case "message": {
            const m = decodePayload(type, frame.payload)
            return yield* m._tag === "Right" ? deliverMessage(m.right) : malformed(type, m.left.message)
          }
          case "peer_joined":
          case "peer_left": {
            const peer = decodePayload(type, frame.payload)
            if (peer._tag === "Left") return yield* malformed(type, peer.left.message)
            const key = peer.right.publicKey
            if (type === "peer_joined") st.peers.add(key)
            else st.peers.delete(key)
            return yield* emit({ _tag: type === "peer_joined" ? "PeerJoined" : "PeerLeft", publicKey: key })
          }
          case "error":
            // Read as the SDK reads it (missing members get its defaults), not refused.
            return yield* emit({ _tag: "Error", error: errorOf(frame.payload) })
          case "message_delivered": {
            const receipt = decodePayload(type, frame.payload)
            return yield* receipt._tag === "Right"
              ? emit({ _tag: "Delivered", receipt: receipt.right })
              : malformed(type, receipt.left.message)
          }
          default:
            // Replies nobody waits for (late, or another request's) are dropped, as the SDK does.
            return
        }
      })

    const failPending = (code: string, message: string) =>
      Effect.suspend(() => {
        const all = [...st.pending.values()]
        st.pending.clear()
        return Effect.forEach(all, (p) => Deferred.fail(p.deferred, fail(code, message)), { discard: true })
      })

    const setState = (state: ConnectionState) => emit({ _tag: "ConnectionState", state })

    const hooks: ReconnectingLink.Hooks<RegisteredPayload, L2psError> = {
      url: config.serverUrl,
      reconnect: reconnectOptions(config.reconnect),
      inboxCapacity: 100_000,
      opened: (link, reconnect) =>
        Effect.suspend(() => {
          st.link = link
          st.generation++
          st.connected = true
          // The SDK reports `connected` on the first open, and after re-registering on a reconnect.
          return reconnect ? Effect.void : setState("connected")
        }),
      handshake: (link) =>
        Effect.raceFirst(
          Effect.zipRight(learnNodeId, request("register", registerFrame, ["registered"], timeouts.request, true)),
          Deferred.await(link.closed).pipe(
            Effect.tap((info) => Effect.sync(() => void (st.lastFailure = { _tag: "Closed", code: info.code, reason: info.reason }))),
            Effect.zipRight(Effect.fail(fail("DISCONNECTED", "Disconnected")))
          )
        ),
      registered: (r, reconnect) =>
        Effect.gen(function*() {
          st.registered = true
          st.everRegistered = true
          st.binary = r.capabilities?.includes("binary") === true
          st.quietAcks = r.capabilities?.includes("quiet_acks") === true
          st.peers = new Set(r.onlinePeers)
          yield* emit({ _tag: "Registered", registered: r, reconnect })
          if (reconnect) yield* setState("connected")
          for (const p of [...st.pending.values()]) if (p.sentOn !== st.generation) yield* write(p)
          if (st.connecting !== undefined) yield* Deferred.succeed(st.connecting, r)
        }),
      refused: (e) =>
        Effect.gen(function*() {
          if (e.code === "DISCONNECTED") return true
          if (!st.everRegistered && st.connecting !== undefined) {
            yield* Deferred.fail(st.connecting, e)
            return false
          }
          yield* emit({
            _tag: "Error",
            error: { code: "INTERNAL_ERROR", message: "Re-registration failed after reconnect", details: e.message }
          })
          return true
        }),
      dispatch,
      closed: (opened, info) =>
        Effect.gen(function*() {
          const was = st.connected
          if (!opened) st.lastFailure = { _tag: "Refused" }
          st.link = undefined
          st.connected = false
          st.registered = false
          st.binary = false
          st.quietAcks = false
          st.peers.clear()
          if (opened || was) yield* setState("disconnected")
          if (info?.code !== EVICTED) return true
          // Another session of this key took the last slot: coming back would evict it in turn.
          st.running = false
          yield* emit({ _tag: "Error", error: { code: "EVICTED", message: info.reason || "Replaced by a newer session of the same key", details: "not reconnecting" } })
          yield* failPending("DISCONNECTED", "Disconnected")
          return false
        }),
      retrying: (delay, attempt) =>
        Effect.zipRight(
          setState("reconnecting"),
          emit({ _tag: "Retrying", attempt, delayMillis: Duration.toMillis(delay) })
        ),
      gaveUp: Effect.gen(function*() {
        st.running = false
        // A first connect that ran out of attempts fails now, not at its timeout.
        if (st.connecting !== undefined && !st.everRegistered) {
          yield* Deferred.fail(st.connecting, connectError(config.serverUrl, st.lastFailure ?? { _tag: "TimedOut", millis: timeouts.connect }))
        }
        yield* emit({
          _tag: "Error",
          error: { code: "INTERNAL_ERROR", message: `Gave up reconnecting to ${config.serverUrl}`, details: "no attempt left" }
        })
        yield* failPending("DISCONNECTED", "Disconnected")
      })
    }

    const stop = Effect.gen(function*() {
      const wasUp = st.connected || st.running
      st.running = false
      yield* FiberHandle.clear(loop)
      st.link = undefined
      st.connected = false
      st.registered = false
      st.peers.clear()
      yield* failPending("DISCONNECTED", "Disconnected")
      if (wasUp) yield* setState("disconnected")
    })

    const connect = Effect.gen(function*() {
      yield* stop
      if (typeof globalThis.WebSocket !== "function") return yield* fail("NO_WEBSOCKET", NO_WEBSOCKET)
      const done = yield* Deferred.make<RegisteredPayload, L2psError>()
      st.connecting = done
      st.lastFailure = undefined
      st.running = true
      st.everRegistered = false
      yield* setState("reconnecting")
      yield* FiberHandle.run(loop, supervised("reconnect", ReconnectingLink.run(hooks)).pipe(Effect.ensuring(Effect.sync(() => void (st.running = false)))))
      return yield* Deferred.await(done).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeouts.connect),
          onTimeout: () => connectError(config.serverUrl, st.lastFailure ?? { _tag: "TimedOut", millis: timeouts.connect })
        }),
        Effect.tapError(() => stop)
      )
    })

    /**
     * `ack` where the node answers none (`quiet_acks` granted): written, not waited for. A refusal still
     * comes as an `error` frame, reported as an `Error` event.
     */
    /** An ack's payload: with `receipts` only when there are some (capability "receipts"). */
    const ackPayload = (messageHashes: ReadonlyArray<string>, receipts?: Readonly<Record<string, string>>) =>
      receipts === undefined || Object.keys(receipts).length === 0
        ? { messageHashes: [...messageHashes] }
        : { messageHashes: [...messageHashes], receipts: { ...receipts } }
    const ackQuietly = (messageHashes: ReadonlyArray<string>, receipts?: Readonly<Record<string, string>>) =>
      Effect.gen(function*() {
        const link = st.link
        if (link === undefined || !st.registered) return yield* fail("NOT_REGISTERED", "Not registered. Call connect() first.")
        const frame = { type: "ack", payload: ackPayload(messageHashes, receipts), timestamp: yield* Clock.currentTimeMillis, requestId: yield* requestId }
        if (!(yield* link.send(encodeClientFrame(frame, st.binary)))) return yield* fail("DISCONNECTED", "Disconnected")
        return { messageHashes: [] } as AckResponsePayload
      })
    const ack = (messageHashes: ReadonlyArray<string>, receipts?: Readonly<Record<string, string>>) =>
      Effect.suspend(() =>
        st.quietAcks
          ? ackQuietly(messageHashes, receipts)
          : request("ack", () => Effect.succeed(ackPayload(messageHashes, receipts)), ["ack_response"], timeouts.request)
      )

    yield* supervise("acks", Stream.fromQueue(acks).pipe(
      Stream.groupedWithin(500, Duration.millis(20)),
      Stream.mapEffect((chunk) =>
        ack([...new Set(chunk)]).pipe(
          Effect.catchAll((e) => e.code === "NOT_REGISTERED" || e.code === "DISCONNECTED" ? Effect.void : emit({ _tag: "Error", error: { code: e.code, message: `ack failed: ${e.message}` } }))
        )),
      Stream.runDrain
    ))
    yield* Effect.addFinalizer(() => stop)

    const isEvent = <T extends PeerEvent["_tag"]>(tag: T) => (e: PeerEvent): e is Extract<PeerEvent, { _tag: T }> => e._tag === tag
    const events = Stream.fromPubSub(hub)
    return {
      config,
      connect,
      disconnect: stop,
      send: (to, encrypted, messageHash) =>
        request("send", () => Effect.succeed({ to, encrypted, messageHash }), ["message_sent", "message_queued"], timeouts.send),
      history: (peerKey, options = {}) =>
        request(
          "history",
          (ts) => Effect.map(sign(proofString("history", peerKey, ts)), (proof) => ({
            peerKey,
            ...proofVersion(),
            ...(options.before === undefined ? {} : { before: options.before }),
            ...(options.limit === undefined ? {} : { limit: options.limit }),
            proof
          })),
          ["history_response"],
          timeouts.request
        ),
      // Follows the node's pages (`nextCursor`, an extension: the SDK's nodes send one page, without it).
      discover: Effect.gen(function*() {
        const peers: Array<string> = []
        let cursor: string | undefined
        for (let page = 0; page < DISCOVER_PAGES_MAX; page++) {
          const r = yield* request(
            "discover",
            () => Effect.succeed(cursor === undefined ? {} : { cursor }),
            ["discover_response"],
            timeouts.request
          )
          peers.push(...r.peers)
          if (r.nextCursor === undefined || r.peers.length === 0) break
          cursor = r.nextCursor
        }
        st.peers = new Set(peers)
        return peers as ReadonlyArray<string>
      }),
      requestPublicKey: (targetId) =>
        request("request_public_key", () => Effect.succeed({ targetId }), ["public_key_response"], timeouts.request)
          .pipe(Effect.map((r) => r.publicKey)),
      ack,
      proofRequest: (messageHash, from) =>
        request("proof_request", () => Effect.succeed(from === undefined ? { messageHash } : { messageHash, from }), ["proof_response"], timeouts.request),
      inviteStore: (invite) => request("invite_store", () => Effect.succeed({ ...invite }), ["invite_stored"], timeouts.request),
      inviteFetch: (inviteId) => request("invite_fetch", () => Effect.succeed({ inviteId }), ["invite_response"], timeouts.request),
      inviteDelete: (inviteId) => request("invite_delete", () => Effect.succeed({ inviteId }), ["invite_deleted"], timeouts.request),
      prekeysPublish: (payload) => request("prekeys_publish", () => Effect.succeed({ ...payload }), ["prekeys_published"], timeouts.request),
      prekeysCount: (deviceId) => request("prekeys_count", () => Effect.succeed({ deviceId }), ["prekeys_count_response"], timeouts.request),
      bundleFetch: (publicKey) => request("bundle_fetch", () => Effect.succeed({ publicKey }), ["bundle_response"], timeouts.request),
      devices: request("devices", () => Effect.succeed({}), ["devices_response"], timeouts.request),
      deviceRemove: (deviceId) => request("device_remove", () => Effect.succeed({ deviceId }), ["device_removed"], timeouts.request),
      events,
      subscribe: PubSub.subscribe(hub),
      messages: Stream.filterMap(events, (e) => isEvent("Message")(e) ? Option.some(e.message) : Option.none()),
      receipts: Stream.filterMap(events, (e) => isEvent("Delivered")(e) ? Option.some(e.receipt) : Option.none()),
      snapshot: Effect.sync(snapshotNow)
    } satisfies L2psPeerShape
  })

/** A `prekeys_publish` payload as written (plain numbers and hex). */
export type PrekeysPublishData = typeof PrekeysPublishPayload.Encoded

/** The client as a layer; it disconnects when the layer's scope closes. */
export const layer = (config: L2psPeerConfig): Layer.Layer<L2psPeer> => Layer.scoped(L2psPeer, make(config))
