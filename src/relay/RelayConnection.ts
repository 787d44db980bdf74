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
import { invalid, refuse, type RequestError } from "../domain/ErrorCode.ts"
import { decodeFrame, encodeFrame, type Envelope, type RequestId } from "../domain/Frames.ts"
import * as Metrics from "../internal/Metrics.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { Connection, ConnectionEvents } from "../transport/Transport.ts"
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

/**
 * The L2PS protocol on a connection actor (`ConnectionActor`): frames are checked in the transport's
 * callback and, when nothing is before them, sends are handled there too (`FastHandler`); the rest go
 * through the inbox to the processor. Live deliveries from other sessions are written at once when the
 * outbox has room, else the session catches up from storage once it drains. `shutdown` closes the
 * session as its socket closing does (the relay runs it for every open session when it stops).
 */
export const open = (
  deps: RelayDeps,
  handlers: Readonly<Record<string, Handler>>,
  fastHandlers: Readonly<Record<string, FastHandler>>,
  fork: (actor: Effect.Effect<void>) => Fiber.RuntimeFiber<void>,
  conn: Connection,
  stalls: StallWatch,
  registered: () => void = () => {}
): ConnectionEvents & { readonly shutdown: () => Effect.Effect<void> } => {
  const { cfg } = deps
  let lagging = false
  let flushRequested = false
  let sending = 0
  let sendRoom: Deferred.Deferred<void> | undefined
  let allSent: Deferred.Deferred<void> | undefined
  let registration: Registration | undefined

  const scheduleFlush = () => {
    if (flushRequested && !actor.isClosing && actor.outbox.size <= cfg.sessionOutbox / 4 && actor.inbox.offer(FLUSH)) {
      flushRequested = false
      actor.unsafeWake()
    }
  }

  const handleNext = () => {
    const item = actor.inbox.poll()
    if (item === undefined) return undefined
    if (item === FLUSH) return catchUp
    if (item instanceof Checked) return handle(item)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => handle(check(item, now)))
  }

  // Sends still committing reach their recipients before the key is announced gone (their replies
  // are dropped with the socket).
  const awaitSends = () => Effect.suspend(() => {
    if (sending === 0) return Effect.void
    allSent = Deferred.unsafeMake<void>(FiberId.none)
    // Interruptible, or the timeout (which interrupts the wait) could not fire in this uninterruptible
    // teardown, and a hung commit would hold the session as long as the database does.
    return Deferred.await(allSent).pipe(Effect.interruptible, Effect.timeout(SENDS_GRACE), Effect.ignore)
  })
  // Live messages still in the outbox were never written: they go back to the recipient's queue.
  const requeueUnwritten = () => Effect.suspend(() => {
    const unwritten = actor.outbox.close()
    if (unwritten.length === 0) return Effect.void
    return deps.storage.requeue(unwritten).pipe(
      Effect.catchAll((e) => logError("requeue of unwritten messages failed", e.cause))
    )
  })

  const actor: ConnectionActor<Inbound> = new ConnectionActor<Inbound>({
    conn,
    inboxCapacity: cfg.sessionInbox,
    outbox: {
      capacity: cfg.sessionOutbox,
      reserved: Math.min(RESERVED, Math.floor(cfg.sessionOutbox / 4)),
      maxLiveBytes: cfg.sessionOutboxBytes,
      maxBytes: cfg.sessionOutputBytes
    },
    frameRate: cfg.connectionFrameRate,
    frameBurst: cfg.connectionFrameBurst,
    stalls,
    fork,
    next: handleNext,
    written: () => flushRequested && scheduleFlush(),
    teardown: () => [awaitSends(), unregister(deps, state), requeueUnwritten()]
  })
  const { id, outbox, frameBudget } = actor

  // Messages handed to this session and not yet acknowledged by it; past the bound the oldest are
  // forgotten: their `ack` is then ignored and they are delivered again on the next registration.
  const handed = new Set<string>()
  const noteHanded = (messageHash: string) => {
    handed.add(messageHash)
    if (handed.size > HANDED_MAX) handed.delete(handed.values().next().value!)
  }

  const state: ConnectionContext = {
    id,
    remoteAddress: conn.remoteAddress,
    get registration() {
      return registration
    },
    set registration(reg) {
      registration = reg
      if (reg === undefined) actor.unsafeUnregistered()
      else actor.unsafeRegistered()
    },
    registered,
    send: (out) => outbox.offer(out),
    // Once closing, replies have no reader.
    reply: (type, payload, requestId) =>
      Effect.suspend(() =>
        actor.isClosing ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) =>
          outbox.offer({ text: encodeFrame(type, payload, now, requestId) }))),
    // Only the processor fiber waits to begin sends, so there is at most one waiter.
    beginSend: Effect.suspend(function wait(): Effect.Effect<void> {
      if (state.unsafeBeginSend()) return Effect.void
      return Effect.flatMap(Deferred.make<void>(), (room) => {
        sendRoom = room
        return Effect.zipRight(Deferred.await(room), Effect.suspend(wait))
      })
    }),
    unsafeBeginSend: () => {
      if (sending >= PIPELINE) return false
      sending++
      return true
    },
    endSend: () => {
      sending--
      if (sendRoom !== undefined) {
        Deferred.unsafeDone(sendRoom, Exit.void)
        sendRoom = undefined
      }
      if (sending === 0 && allSent !== undefined) Deferred.unsafeDone(allSent, Exit.void)
    },
    unsafeReply: (type, payload, requestId, now) => {
      if (!actor.isClosing) outbox.pushOwn(encodeFrame(type, payload, now, requestId))
    },
    unsafeFail: (error, requestId, now) => {
      state.unsafeReply("error", { code: error.code, message: error.message }, requestId, now)
      Metrics.errors(error.code).unsafeUpdate(1, [])
      if (error.code === "RATE_LIMITED") Metrics.rateLimited.unsafeUpdate(1, [])
    },
    unsafeRefuseSend: (error, requestId, now) => {
      state.unsafeFail(error, requestId, now)
      chargeRefusal(now)
    },
    handed: noteHanded,
    wasHanded: (messageHash) => handed.delete(messageHash),
    written: outbox.written,
    asPeer: (reg: Omit<Registration, "peer">): Peer => ({
      id,
      key: reg.key,
      l2psUid: reg.l2psUid,
      ackCapable: reg.ackCapable,
      copies: reg.copies,
      receipts: reg.receipts,
      canAccept: () => !actor.isClosing && !lagging && outbox.hasRoomForLive(),
      handed: noteHanded,
      push: (text, messageId) => {
        if (actor.isClosing) return false
        if (!outbox.pushLive(text, messageId)) {
          lagging = true
          flushRequested = true
          return false
        }
        return true
      },
      requestFlush: () => {
        flushRequested = true
        scheduleFlush()
      },
      close: (code, reason) => conn.close(code, reason),
      subscribe: conn.subscribe,
      unsubscribe: conn.unsubscribe,
      publish: conn.publish
    })
  }

  // Annotated here rather than on the session's fiber: an annotation costs every held session ~2 KB.
  const logError = (message: string, cause: unknown) => Effect.logError(message, cause).pipe(Effect.annotateLogs({ session: id }))

  const errorFrame = (error: RequestError, requestId: RequestId | undefined) =>
    state.reply("error", { code: error.code, message: error.message }, requestId).pipe(
      Effect.zipRight(Metric.increment(Metrics.errors(error.code))),
      Effect.zipRight(error.code === "RATE_LIMITED" ? Metric.increment(Metrics.rateLimited) : Effect.void)
    )

  // Made when refused, not per connection: an error object (~200 bytes with its stack) in every held session.
  const tooManyFrames = () => refuse("RATE_LIMITED", "Too many frames")
  const textError = (e: FrameTextError) =>
    e === FrameTextError.TooLarge ? invalid(`Message too large (max ${cfg.maxFrameChars} bytes)`) : invalid("Binary frame is not valid UTF-8")

  /**
   * A registered session's accepted sends have their own per-key limits (configurable per network), so
   * the connection's frame budget must not cap them below those; a refused one is charged to it instead,
   * and a storm of refusals, which costs everyone else the node's time, closes the socket.
   */
  const chargeRefusal = (now: number) => {
    if (!frameBudget.tryTake(now)) conn.close(REFUSALS_CODE, "Too many refused frames")
  }

  /** The checks every frame passes before its handler, in plain code (the budget's token is taken here). */
  const check = (data: string | Uint8Array, now: number): Checked => {
    const registered = actor.phase === "registered"
    // Unregistered, the budget is spent before any parsing; registered, a send is charged only if refused.
    if (!registered && !frameBudget.tryTake(now)) return new Checked(undefined, "", tooManyFrames())
    const text = frameText(data, cfg.maxFrameChars)
    if (text instanceof FrameTextError) {
      return rejected(registered, now, new Checked(undefined, "", textError(text)))
    }
    const decoded = decodeFrame(text)
    if (decoded._tag === "Bad") return rejected(registered, now, new Checked(undefined, text, decoded.error, decoded.requestId))
    const frame = decoded.frame
    if (registered && frame.type !== "send" && !frameBudget.tryTake(now)) return new Checked(undefined, text, tooManyFrames())
    return new Checked(frame, text)
  }
  /** A registered session's frame refused before its type was known: charged like any other. */
  const rejected = (registered: boolean, now: number, checked: Checked): Checked => {
    if (registered && !frameBudget.tryTake(now)) return new Checked(undefined, checked.text, tooManyFrames(), checked.requestId)
    return checked
  }

  const handle = (item: Checked) =>
    Effect.suspend(() => {
      const frame = item.frame
      if (frame === undefined) return errorFrame(item.error!, item.requestId)
      const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : undefined
      if (handler === undefined) {
        return errorFrame(invalid(`Unknown type: ${frame.type.slice(0, 64)}`), frame.requestId)
      }
      const effect = handler(state, frame, item.text)
      return settle(
        frame.type === "send" && registration !== undefined ? Effect.tapError(effect, chargeSend) : effect,
        frame.type,
        frame.requestId
      )
    })
  const chargeSend = (e: RequestError | StorageError) =>
    e._tag === "RequestError" ? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => chargeRefusal(now))) : Effect.void

  /** A request's failure becomes its error frame; an unexpected one is logged and answered INTERNAL_ERROR. */
  const settle = (effect: Effect.Effect<void, RequestError | StorageError>, type: string, requestId: RequestId | undefined) =>
    effect.pipe(
      Effect.catchTag("RequestError", (e) => errorFrame(e, requestId)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : logError(`${type} failed`, cause).pipe(
          Effect.zipRight(errorFrame(refuse("INTERNAL_ERROR", "Internal server error"), requestId))
        )
      )
    )

  const catchUp = Effect.suspend(() => {
    lagging = false
    const reg = registration
    return reg === undefined ? Effect.void : flushPending(deps, state, reg, false)
  }).pipe(Effect.catchAllCause((cause) => logError("catch-up delivery failed", cause)))

  return {
    message: (data) => {
      if (actor.isClosing) return
      // With nothing before it, the frame is checked here, and handled here when its type allows.
      if (!actor.isIdle) return actor.unsafeOffer(data)
      const now = deps.now()
      const checked = check(data, now)
      const fast = checked.frame !== undefined && Object.hasOwn(fastHandlers, checked.frame.type)
        ? fastHandlers[checked.frame.type]
        : undefined
      if (fast !== undefined && fast(state, checked.frame!, checked.text, now)) return
      actor.unsafeOffer(checked)
    },
    drain: () => outbox.drain(),
    closed: () => actor.unsafeClose(),
    shutdown: () => actor.close
  }
}
