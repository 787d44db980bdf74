import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import { ConnectionActor } from "../connection/ConnectionActor.ts"
import { frameText, FrameTextError } from "../connection/FrameText.ts"
import type { StallWatch } from "../connection/StallWatch.ts"
import type { Registered } from "../limits/RegistrationDeadline.ts"
import { invalid, refuse, type RequestError } from "../domain/ErrorCode.ts"
import { decodeBinary, isBinaryFrame, toBinary } from "../domain/BinaryFrames.ts"
import { decodeFrame, encodeFrame, type Envelope, type RequestId } from "../domain/Frames.ts"
import * as Metrics from "../internal/Metrics.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { Connection, ConnectionEvents, WriteResult } from "../transport/Transport.ts"
import type { Outgoing, Writer } from "../connection/Outbox.ts"
import { flushPending } from "./handlers/Delivery.ts"
import { unregister } from "./handlers/Unregister.ts"
import type { RelayDeps } from "./RelayDeps.ts"
import type { Peer } from "./Peers.ts"
import type { Registration, ConnectionContext } from "./ConnectionContext.ts"

/** Handles one decoded frame; `text` is the frame as received (for payloads relayed as they came). */
export type Handler = (
  session: ConnectionContext,
  frame: Envelope,
  text: string
) => Effect.Effect<void, RequestError | StorageError>

/**
 * Handles one decoded frame from plain code, in the connection's callback, when it can without waiting
 * (the common case of a frequent request); false, with nothing changed, hands it to its `Handler`.
 */
export type FastHandler = (session: ConnectionContext, frame: Envelope, text: string, now: number) => boolean

/** Catch-up signal from the outbox to the processor, carried in the inbox to keep storage work in order. */
const FLUSH = Symbol("flush")

/** A frame already checked by the connection's callback: its envelope, or the error frame it gets. */
class Checked {
  constructor(readonly frame: Envelope | undefined, readonly text: string, readonly error?: RequestError, readonly requestId?: RequestId) {}
}
type Inbound = string | Uint8Array | Checked | typeof FLUSH

/** Close code of a socket whose refused frames outran its frame budget. */
export const REFUSALS_CODE = 1008
/** Sends of one session waiting for their commit at once: enough to fill group commits from few peers. */
const PIPELINE = 64
/** Unacknowledged messages a session remembers being handed (SECURITY.md 6). */
const HANDED_MAX = 8192
/** Outbox slots kept for the session's own replies; live deliveries from others stop short of them. */
const RESERVED = 32
/** How long closing waits for the session's sends still committing. */
const SENDS_GRACE = "10 seconds"

/** What every session of a server shares, in one object: made once per server, not per connection. */
export interface Shared {
  readonly deps: RelayDeps
  readonly handlers: Readonly<Record<string, Handler>>
  readonly fastHandlers: Readonly<Record<string, FastHandler>>
  readonly fork: (actor: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  readonly stalls: StallWatch
  /** Told when a session's socket has closed, before its teardown. */
  readonly closed?: ((session: Session) => void) | undefined
}

/** A session as its server holds it: the socket's events, and a way to close it when the server stops. */
export interface Session extends ConnectionEvents {
  readonly shutdown: () => Effect.Effect<void>
}

const noDeadline: Registered = { registered: () => {} }

// Made when refused, not per connection: an error object (~200 bytes with its stack) in every held session.
const tooManyFrames = () => refuse("RATE_LIMITED", "Too many frames")

/** A registered session as others see it: its methods are shared, its fields are the registration's. */
class SessionPeer implements Peer {
  constructor(
    private readonly session: RelaySession,
    readonly key: string,
    readonly l2psUid: string,
    readonly ackCapable: boolean,
    readonly copies: boolean,
    readonly receipts: boolean
  ) {}

  get id(): number {
    return this.session.id
  }

  canAccept(): boolean {
    const s = this.session
    return !s.actor.isClosing && !s.lagging && s.actor.outbox.hasRoomForLive()
  }

  handed(messageHash: string): void {
    this.session.handed(messageHash)
  }

  push(text: string, messageId?: string): boolean {
    const s = this.session
    if (s.actor.isClosing) return false
    if (!s.actor.outbox.pushLive(text, messageId)) {
      s.lagging = true
      s.flushRequested = true
      return false
    }
    return true
  }

  requestFlush(): void {
    this.session.flushRequested = true
    this.session.scheduleFlush()
  }

  close(code: number, reason: string): void {
    this.session.conn.close(code, reason)
  }

  subscribe(topic: string): void {
    this.session.conn.subscribe(topic)
  }

  unsubscribe(topic: string): void {
    this.session.conn.unsubscribe(topic)
  }

  publish(topic: string, text: string): void {
    this.session.conn.publish(topic, text)
  }
}

/**
 * The outbox's writer for a transport that writes binary frames: a session that asked for them gets the
 * hot frames in binary; every other frame, and every frame of other sessions, is written as the JSON text
 * it was built as. A class, not closures: one small object per session.
 */
class BinaryAwareWriter implements Writer {
  constructor(private readonly conn: Connection, private readonly session: { readonly binaryFrames: boolean }) {}

  send(text: string): WriteResult {
    if (!this.session.binaryFrames) return this.conn.send(text)
    const binary = toBinary(text)
    return binary === undefined ? this.conn.send(text) : this.conn.sendBinary!(binary)
  }

  cork(writes: () => void): void {
    if (this.conn.cork === undefined) writes()
    else this.conn.cork(writes)
  }
}

/**
 * The L2PS protocol on a connection actor (`ConnectionActor`): frames are checked in the transport's
 * callback and, when nothing is before them, sends are handled there too (`FastHandler`); the rest go
 * through the inbox to the processor. Live deliveries from other sessions are written at once when the
 * outbox has room, else the session catches up from storage once it drains.
 *
 * A class, its methods on the prototype: a node holds tens of thousands of sessions, and the closures of
 * a session made as a function (~40, with their scopes) were a third of its heap.
 */
class RelaySession implements ConnectionContext {
  lagging = false
  flushRequested = false
  private sending = 0
  private sendRoom: Deferred.Deferred<void> | undefined
  private allSent: Deferred.Deferred<void> | undefined
  private currentRegistration: Registration | undefined
  /**
   * Messages handed to this session and not yet acknowledged by it; past the bound the oldest are
   * forgotten: their `ack` is then ignored and they are delivered again on the next registration. Made
   * with the first one (most held sessions are never handed a message needing an `ack`).
   */
  private handedSet: Set<string> | undefined
  readonly actor: ConnectionActor<Inbound>
  readonly remoteAddress: string

  constructor(
    private readonly s: Shared,
    readonly conn: Connection,
    private readonly deadline: Registered
  ) {
    const cfg = s.deps.cfg
    this.remoteAddress = conn.remoteAddress
    this.actor = new ConnectionActor<Inbound>({
      conn,
      writer: conn.sendBinary === undefined ? conn : new BinaryAwareWriter(conn, this),
      inboxCapacity: cfg.sessionInbox,
      outbox: {
        capacity: cfg.sessionOutbox,
        reserved: Math.min(RESERVED, Math.floor(cfg.sessionOutbox / 4)),
        maxLiveBytes: cfg.sessionOutboxBytes,
        maxBytes: cfg.sessionOutputBytes
      },
      frameRate: cfg.connectionFrameRate,
      frameBurst: cfg.connectionFrameBurst,
      stalls: s.stalls,
      fork: s.fork,
      protocol: this
    })
  }

  get id(): number {
    return this.actor.id
  }

  registered(): void {
    this.deadline.registered()
  }

  // The socket's events (`ConnectionEvents`) and the server's stop (`Session`).
  drain(): void {
    this.actor.outbox.drain()
  }

  closed(): void {
    this.s.closed?.(this)
    this.actor.unsafeClose()
  }

  shutdown(): Effect.Effect<void> {
    return this.actor.close
  }

  /** Whether the session asked for binary frames (capability "binary"). */
  get binaryFrames(): boolean {
    return this.currentRegistration?.binaryFrames === true
  }

  get registration(): Registration | undefined {
    return this.currentRegistration
  }

  set registration(reg: Registration | undefined) {
    this.currentRegistration = reg
    if (reg === undefined) this.actor.unsafeUnregistered()
    else this.actor.unsafeRegistered()
  }

  scheduleFlush(): void {
    const actor = this.actor
    if (this.flushRequested && !actor.isClosing && actor.outbox.size <= this.s.deps.cfg.sessionOutbox / 4 && actor.inbox.offer(FLUSH)) {
      this.flushRequested = false
      actor.unsafeWake()
    }
  }

  // The connection actor's protocol (`ActorProtocol`), as methods.
  onWritten(): void {
    if (this.flushRequested) this.scheduleFlush()
  }

  teardownSteps(): ReadonlyArray<Effect.Effect<void>> {
    return [this.awaitSends(), unregister(this.s.deps, this), this.requeueUnwritten()]
  }

  nextStep(): Effect.Effect<void, unknown> | undefined {
    const item = this.actor.inbox.poll()
    if (item === undefined) return undefined
    if (item === FLUSH) return this.catchUp()
    if (item instanceof Checked) return this.handle(item)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => this.handle(this.check(item, now)))
  }

  // Sends still committing reach their recipients before the key is announced gone (their replies
  // are dropped with the socket).
  private awaitSends(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.sending === 0) return Effect.void
      const allSent = this.allSent = Deferred.unsafeMake<void>(FiberId.none)
      // Interruptible, or the timeout (which interrupts the wait) could not fire in this uninterruptible
      // teardown, and a hung commit would hold the session as long as the database does.
      return Deferred.await(allSent).pipe(Effect.interruptible, Effect.timeout(SENDS_GRACE), Effect.ignore)
    })
  }

  // Live messages still in the outbox were never written: they go back to the recipient's queue.
  private requeueUnwritten(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const unwritten = this.actor.outbox.close()
      if (unwritten.length === 0) return Effect.void
      return this.s.deps.storage.requeue(unwritten).pipe(
        Effect.catchAll((e) => this.logError("requeue of unwritten messages failed", e.cause))
      )
    })
  }

  handed(messageHash: string): void {
    const handed = this.handedSet ??= new Set()
    handed.add(messageHash)
    if (handed.size > HANDED_MAX) handed.delete(handed.values().next().value!)
  }

  wasHanded(messageHash: string): boolean {
    return this.handedSet?.delete(messageHash) ?? false
  }

  send(out: Outgoing): Effect.Effect<void> {
    return this.actor.outbox.offer(out)
  }

  // Once closing, replies have no reader.
  reply(type: string, payload: unknown, requestId: RequestId | undefined): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.actor.isClosing || (type === "ack_response" && this.currentRegistration?.quietAcks === true) ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        this.actor.outbox.offer({ text: encodeFrame(type, payload, now, requestId) })))
  }

  get written(): Effect.Effect<boolean> {
    return this.actor.outbox.written
  }

  // Only the processor fiber waits to begin sends, so there is at most one waiter.
  get beginSend(): Effect.Effect<void> {
    const wait = (): Effect.Effect<void> => {
      if (this.unsafeBeginSend()) return Effect.void
      return Effect.flatMap(Deferred.make<void>(), (room) => {
        this.sendRoom = room
        return Effect.zipRight(Deferred.await(room), Effect.suspend(wait))
      })
    }
    return Effect.suspend(wait)
  }

  unsafeBeginSend(): boolean {
    if (this.sending >= PIPELINE) return false
    this.sending++
    return true
  }

  endSend(): void {
    this.sending--
    if (this.sendRoom !== undefined) {
      Deferred.unsafeDone(this.sendRoom, Exit.void)
      this.sendRoom = undefined
    }
    if (this.sending === 0 && this.allSent !== undefined) Deferred.unsafeDone(this.allSent, Exit.void)
  }

  unsafeReply(type: string, payload: unknown, requestId: RequestId | undefined, now: number): void {
    if (!this.actor.isClosing) this.actor.outbox.pushOwn(encodeFrame(type, payload, now, requestId))
  }

  unsafeFail(error: RequestError, requestId: RequestId | undefined, now: number): void {
    this.unsafeReply("error", { code: error.code, message: error.message }, requestId, now)
    Metrics.errors(error.code).unsafeUpdate(1, [])
    if (error.code === "RATE_LIMITED") Metrics.rateLimited.unsafeUpdate(1, [])
  }

  unsafeRefuseSend(error: RequestError, requestId: RequestId | undefined, now: number): void {
    this.unsafeFail(error, requestId, now)
    this.chargeRefusal(now)
  }

  asPeer(reg: Omit<Registration, "peer">): Peer {
    return new SessionPeer(this, reg.key, reg.l2psUid, reg.ackCapable, reg.copies, reg.receipts)
  }

  // Annotated here rather than on the session's fiber: an annotation costs every held session ~2 KB.
  private logError(message: string, cause: unknown): Effect.Effect<void> {
    return Effect.logError(message, cause).pipe(Effect.annotateLogs({ session: this.id }))
  }

  private errorFrame(error: RequestError, requestId: RequestId | undefined): Effect.Effect<void> {
    return this.reply("error", { code: error.code, message: error.message }, requestId).pipe(
      Effect.zipRight(Metric.increment(Metrics.errors(error.code))),
      Effect.zipRight(error.code === "RATE_LIMITED" ? Metric.increment(Metrics.rateLimited) : Effect.void)
    )
  }

  private textError(e: FrameTextError): RequestError {
    return e === FrameTextError.TooLarge ? invalid(`Message too large (max ${this.s.deps.cfg.maxFrameChars} bytes)`) : invalid("Binary frame is not valid UTF-8")
  }

  /**
   * A registered session's accepted sends have their own per-key limits (configurable per network), so
   * the connection's frame budget must not cap them below those; a refused one is charged to it instead,
   * and a storm of refusals, which costs everyone else the node's time, closes the socket.
   */
  private chargeRefusal(now: number): void {
    if (!this.actor.frameBudget.tryTake(now)) this.conn.close(REFUSALS_CODE, "Too many refused frames")
  }

  /** The checks every frame passes before its handler, in plain code (the budget's token is taken here). */
  private check(data: string | Uint8Array, now: number): Checked {
    const registered = this.actor.phase === "registered"
    const frameBudget = this.actor.frameBudget
    // Unregistered, the budget is spent before any parsing; registered, a send is charged only if refused.
    if (!registered && !frameBudget.tryTake(now)) return new Checked(undefined, "", tooManyFrames())
    if (typeof data !== "string" && isBinaryFrame(data)) return this.checkBinary(registered, now, data)
    const text = frameText(data, this.s.deps.cfg.maxFrameChars)
    if (text instanceof FrameTextError) {
      return this.rejected(registered, now, new Checked(undefined, "", this.textError(text)))
    }
    const decoded = decodeFrame(text)
    if (decoded._tag === "Bad") return this.rejected(registered, now, new Checked(undefined, text, decoded.error, decoded.requestId))
    const frame = decoded.frame
    if (registered && frame.type !== "send" && !frameBudget.tryTake(now)) return new Checked(undefined, text, tooManyFrames())
    return new Checked(frame, text)
  }

  /**
   * A frame in the binary encoding (src/domain/BinaryFrames.ts): bounded as a JSON frame is, and read
   * into the JSON frame it stands for; handlers get no frame text (what they relay they serialise).
   */
  private checkBinary(registered: boolean, now: number, data: Uint8Array): Checked {
    if (data.byteLength > this.s.deps.cfg.maxFrameChars) {
      return this.rejected(registered, now, new Checked(undefined, "", this.textError(FrameTextError.TooLarge)))
    }
    const decoded = decodeBinary(data)
    if (decoded._tag === "Bad") return this.rejected(registered, now, new Checked(undefined, "", invalid(decoded.message), decoded.requestId))
    const frame: Envelope = decoded.frame
    if (registered && frame.type !== "send" && !this.actor.frameBudget.tryTake(now)) return new Checked(undefined, "", tooManyFrames())
    return new Checked(frame, "")
  }

  /** A registered session's frame refused before its type was known: charged like any other. */
  private rejected(registered: boolean, now: number, checked: Checked): Checked {
    if (registered && !this.actor.frameBudget.tryTake(now)) return new Checked(undefined, checked.text, tooManyFrames(), checked.requestId)
    return checked
  }

  private handle(item: Checked): Effect.Effect<void, StorageError> {
    return Effect.suspend(() => {
      const frame = item.frame
      if (frame === undefined) return this.errorFrame(item.error!, item.requestId)
      const handlers = this.s.handlers
      const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : undefined
      if (handler === undefined) {
        return this.errorFrame(invalid(`Unknown type: ${frame.type.slice(0, 64)}`), frame.requestId)
      }
      const effect = handler(this, frame, item.text)
      return this.settle(
        frame.type === "send" && this.currentRegistration !== undefined ? Effect.tapError(effect, (e) => this.chargeSend(e)) : effect,
        frame.type,
        frame.requestId
      )
    })
  }

  private chargeSend(e: RequestError | StorageError): Effect.Effect<void> {
    return e._tag === "RequestError" ? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => this.chargeRefusal(now))) : Effect.void
  }

  /** A request's failure becomes its error frame; an unexpected one is logged and answered INTERNAL_ERROR. */
  private settle(effect: Effect.Effect<void, RequestError | StorageError>, type: string, requestId: RequestId | undefined): Effect.Effect<void, StorageError> {
    return effect.pipe(
      Effect.catchTag("RequestError", (e) => this.errorFrame(e, requestId)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : this.logError(`${type} failed`, cause).pipe(
          Effect.zipRight(this.errorFrame(refuse("INTERNAL_ERROR", "Internal server error"), requestId))
        )
      )
    )
  }

  private catchUp(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.lagging = false
      const reg = this.currentRegistration
      return reg === undefined ? Effect.void : flushPending(this.s.deps, this, reg, false)
    }).pipe(Effect.catchAllCause((cause) => this.logError("catch-up delivery failed", cause)))
  }

  message(data: string | Uint8Array): void {
    const actor = this.actor
    if (actor.isClosing) return
    // With nothing before it, the frame is checked here, and handled here when its type allows.
    if (!actor.isIdle) return actor.unsafeOffer(data)
    const now = this.s.deps.now()
    const checked = this.check(data, now)
    const fastHandlers = this.s.fastHandlers
    const fast = checked.frame !== undefined && Object.hasOwn(fastHandlers, checked.frame.type)
      ? fastHandlers[checked.frame.type]
      : undefined
    if (fast !== undefined && fast(this, checked.frame!, checked.text, now)) return
    actor.unsafeOffer(checked)
  }
}

/**
 * Opens a session on `conn`. Its `shutdown` closes the session as its socket closing does (the relay runs
 * it for every open session when it stops).
 */
export const open = (shared: Shared, conn: Connection, deadline: Registered = noDeadline): Session =>
  new RelaySession(shared, conn, deadline)
