import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import { ConnectionActor } from "../connection/ConnectionActor.ts"
import { frameText, FrameTextError } from "../connection/FrameText.ts"
import type { Outgoing } from "../connection/Outbox.ts"
import type { StallWatch } from "../connection/StallWatch.ts"
import { Fifo } from "../internal/Fifo.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { Connection, ConnectionEvents } from "../transport/Transport.ts"
import { catchUp } from "./handlers/Delivery.ts"
import type { LegacyDeps } from "./LegacyDeps.ts"
import { decodeFrame, encodeError, encodeFrame, type LegacyEnvelope, type LegacyError, refuse } from "./LegacyFrames.ts"
import type { LegacyPeer, QuestionFailure } from "./LegacyPeers.ts"
import type { LegacyRegistration, LegacyConnectionContext } from "./LegacyConnectionContext.ts"

export type LegacyHandler = (
  session: LegacyConnectionContext,
  frame: LegacyEnvelope
) => Effect.Effect<void, LegacyError | StorageError>

/** `live`: delivered by another session, counted against the byte budget until written. */
type Mail = Outgoing & { readonly live: boolean }

/** Questions a peer may leave unanswered at once; past it the oldest is dropped. */
const QUESTIONS_MAX = 32

/**
 * The legacy protocol on a connection actor (`ConnectionActor`). The 2.9.1 client takes the next frame
 * after a request as its reply, so the processor handles, in order and one at a time: the client's
 * frames first, then (only while none wait) live messages and server questions from its mailbox, then
 * catching up on what storage holds for it. Every reply thus follows its request with nothing in
 * between but `peer_disconnected`, which the client handles apart and which goes straight to the outbox.
 */
export const open = (
  deps: LegacyDeps,
  handlers: Readonly<Record<string, LegacyHandler>>,
  fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>,
  conn: Connection,
  stalls: StallWatch,
  registered: () => void = () => {}
): ConnectionEvents & { readonly shutdown: () => Effect.Effect<void> } => {
  const { cfg } = deps
  /** Live messages and questions held while a request is handled; bounded by `sessionOutbox`. */
  const mailbox = new Fifo<Mail>()
  /** Characters of live messages in the mailbox (the outbox counts its own). */
  let mailBytes = 0
  const questions = new Map<string, Deferred.Deferred<unknown, QuestionFailure>>()
  /** Live messages taken from the mailbox and dropped on their way to the outbox by the close. */
  const dropped: Array<string> = []
  let registration: LegacyRegistration | undefined
  let nonce: string | undefined
  /** Storage may hold messages for it: live delivery waits until it has caught up. */
  let flushRequested = false
  /** A catch-up is under way (possibly paused for a request): live messages go through storage. */
  let flushing = false

  // Requests first; then live mail (older than anything queued since, as queueing starts when the
  // mailbox overflows and live delivery stays off while catching up); catching up last.
  const next = () => {
    const frame = actor.inbox.poll()
    if (frame !== undefined) return handle(frame)
    const mail = mailbox.shift()
    if (mail !== undefined) {
      if (mail.live) mailBytes -= mail.text.length
      const moved = actor.outbox.offer(mail, mail.live)
      // A live message interrupted while it waits for room goes back to the recipient's queue with the rest.
      return mail.messageId === undefined ? moved : Effect.onInterrupt(moved, () => Effect.sync(() => dropped.push(mail.messageId!)))
    }
    if (flushRequested && registration !== undefined) return flush
    return undefined
  }

  /** The id the session held when it closed: its unwritten messages may go to the session holding it now. */
  let heldId: string | undefined
  /** Leaves the registry, so the id is free and its peers are told. */
  const leave = Effect.suspend(() => {
    const reg = registration
    registration = undefined
    if (reg === undefined) return Effect.void
    heldId = reg.clientId
    return Effect.flatMap(deps.peers.release(reg.peer), (released) =>
      released ? deps.peers.notifyAll(encodeFrame("peer_disconnected", { peerId: reg.clientId })) : Effect.void)
  })
  const failQuestions = Effect.sync(() => {
    for (const d of questions.values()) Deferred.unsafeDone(d, Exit.fail("Disconnected"))
    questions.clear()
  })
  // Live messages never written go back to the recipient's queue.
  const requeueUnwritten = Effect.gen(function*() {
    const unwritten = [...dropped, ...actor.outbox.close()]
    for (const mail of mailbox.clear()) if (mail.messageId !== undefined) unwritten.push(mail.messageId)
    mailBytes = 0
    if (unwritten.length === 0) return
    yield* deps.storage.requeue(unwritten).pipe(
      Effect.catchAll((e) => Effect.logError("requeue of unwritten legacy messages failed", e.cause))
    )
    // A session that took the id over meanwhile has caught up already: it gets them now.
    if (heldId !== undefined) (yield* deps.peers.get(heldId))?.requestFlush()
  })

  const actor: ConnectionActor<string | Uint8Array> = new ConnectionActor<string | Uint8Array>({
    conn,
    inboxCapacity: cfg.sessionInbox,
    outbox: { capacity: cfg.sessionOutbox, reserved: 0, maxLiveBytes: cfg.sessionOutboxBytes, maxBytes: cfg.sessionOutputBytes },
    frameRate: cfg.connectionFrameRate,
    frameBurst: cfg.connectionFrameBurst,
    stalls,
    fork,
    protocol: {
      nextStep: next,
      // A socket that drained may make room for a catch-up asked for while it was full.
      onWritten: () => {
        if (flushRequested && registration !== undefined) actor.unsafeWake()
      },
      teardownSteps: () => [leave, failQuestions, requeueUnwritten]
    }
  })
  const { id, outbox } = actor

  const remember = (questionId: string, d: Deferred.Deferred<unknown, QuestionFailure>) => {
    if (questions.size >= QUESTIONS_MAX) {
      const [oldest, waiter] = questions.entries().next().value!
      questions.delete(oldest)
      Deferred.unsafeDone(waiter, Exit.fail("Busy"))
    }
    questions.set(questionId, d)
  }

  const liveBytes = () => mailBytes + outbox.liveBytes

  const peerOf = (clientId: string, publicKey: ReadonlyArray<number>, signer: string): LegacyPeer => ({
    sessionId: id,
    clientId,
    signer,
    get publicKey() {
      return registration?.publicKey ?? publicKey
    },
    canAccept: () =>
      !actor.isClosing && !flushRequested && !flushing && mailbox.size < cfg.sessionOutbox && liveBytes() < cfg.sessionOutboxBytes,
    deliver: (text, messageId) => {
      if (actor.isClosing || mailbox.size >= cfg.sessionOutbox || liveBytes() + text.length > cfg.sessionOutboxBytes) {
        flushRequested = true
        return false
      }
      mailbox.push({ text, messageId, live: true })
      mailBytes += text.length
      actor.unsafeWake()
      return true
    },
    requestFlush: () => {
      flushRequested = true
      actor.unsafeWake()
    },
    notify: (text) => {
      if (!actor.isClosing && outbox.size < outbox.capacity) outbox.pushOwn(text)
    },
    ask: (questionId, question) => {
      if (actor.isClosing || mailbox.size >= cfg.sessionOutbox) return undefined
      mailbox.push({ text: encodeFrame("server_question", { questionId, question }), live: false })
      const d = Deferred.unsafeMake<unknown, QuestionFailure>(FiberId.none)
      remember(questionId, d)
      actor.unsafeWake()
      return d
    },
    forget: (questionId) => {
      questions.delete(questionId)
    },
    close: (code, reason) => conn.close(code, reason),
    evict: (text, code, reason) => {
      actor.unsafeStop()
      conn.send(text)
      conn.close(code, reason)
    }
  })

  const state: LegacyConnectionContext = {
    id,
    remoteAddress: conn.remoteAddress,
    get registration() {
      return registration
    },
    reply: (type, payload) => outbox.offer({ text: encodeFrame(type, payload) }),
    register: (clientId, publicKey, signer) =>
      registration = registration?.clientId === clientId
        ? { ...registration, publicKey, signer }
        : { clientId, publicKey, signer, peer: peerOf(clientId, publicKey, signer) },
    registered: () => {
      actor.unsafeRegistered()
      registered()
    },
    unregister: () => {
      registration = undefined
      actor.unsafeUnregistered()
    },
    issueNonce: (n) => {
      nonce = n
    },
    takeNonce: () => {
      const n = nonce
      nonce = undefined
      return n
    },
    expect: (questionId) => remember(questionId, Deferred.unsafeMake<unknown, QuestionFailure>(FiberId.none)),
    answer: (questionId, response) => {
      const d = questions.get(questionId)
      if (d === undefined) return false
      questions.delete(questionId)
      Deferred.unsafeDone(d, Exit.succeed(response))
      return true
    }
  }

  const errorFrame = (error: LegacyError) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => outbox.offer({ text: encodeError(error, now) }))

  // Made when refused, not per connection: an error object holds its stack.
  const textError = (e: FrameTextError) =>
    e === FrameTextError.TooLarge
      ? refuse("INVALID_MESSAGE", `Message too large (max ${cfg.maxFrameChars} characters)`)
      : refuse("INVALID_MESSAGE", "Binary frame is not valid UTF-8")

  const handle = (data: string | Uint8Array) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (!actor.frameBudget.tryTake(now)) return yield* errorFrame(refuse("RATE_LIMITED", "Too many frames"))
      const text = frameText(data, cfg.maxFrameChars)
      if (text instanceof FrameTextError) return yield* errorFrame(textError(text))
      const decoded = decodeFrame(text)
      if (Either.isLeft(decoded)) return yield* errorFrame(decoded.left)
      const frame = decoded.right
      const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : undefined
      if (handler === undefined) {
        return yield* errorFrame(refuse("INVALID_MESSAGE", `Unknown message type: ${frame.type.slice(0, 64)}`))
      }
      yield* handler(state, frame).pipe(
        Effect.catchTag("LegacyError", errorFrame),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.logError(`legacy ${frame.type} failed`, cause).pipe(
            Effect.annotateLogs({ legacySession: id }),
            Effect.zipRight(errorFrame(refuse("INTERNAL_ERROR", "Internal server error")))
          )
        )
      )
    })

  const flush = Effect.suspend(() => {
    flushRequested = false
    flushing = true
    const reg = registration
    if (reg === undefined) return Effect.void
    return catchUp(deps, reg.clientId, {
      pending: () => actor.inbox.size > 0,
      send: (text) => outbox.offer({ text }),
      written: outbox.written
    }).pipe(
      Effect.map((done) => {
        if (done) flushing = false
        else flushRequested = true
      }),
      Effect.catchAllCause((cause) =>
        Effect.logError("legacy catch-up delivery failed", cause).pipe(
          Effect.annotateLogs({ legacySession: id }),
          Effect.ensuring(Effect.sync(() => {
            flushing = false
          }))
        )
      )
    )
  })

  return {
    message: (data) => actor.unsafeOffer(data),
    drain: () => outbox.drain(),
    closed: () => actor.unsafeClose(),
    shutdown: () => actor.close
  }
}
