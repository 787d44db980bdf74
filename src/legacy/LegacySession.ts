import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import type { StorageError } from "../storage/Storage.ts"
import { TokenBucket } from "../limits/TokenBucket.ts"
import type { Connection, ConnectionEvents } from "../transport/Transport.ts"
import { catchUp } from "./handlers/Delivery.ts"
import type { LegacyDeps } from "./LegacyDeps.ts"
import { decodeFrame, encodeError, encodeFrame, type LegacyEnvelope, type LegacyError, refuse } from "./LegacyFrames.ts"
import type { LegacyPeer, QuestionFailure } from "./LegacyPeers.ts"
import type { LegacyRegistration, LegacySessionState } from "./LegacySessionState.ts"

export type LegacyHandler = (
  session: LegacySessionState,
  frame: LegacyEnvelope
) => Effect.Effect<void, LegacyError | StorageError>

/** A frame for the socket; `messageId` marks a live message whose delivery is tracked in storage. */
interface Outgoing {
  readonly text: string
  readonly messageId?: string | undefined
}
/** `live`: delivered by another session, counted against the byte budget until written. */
type OutItem = (Outgoing & { readonly live?: boolean }) | { readonly marker: Deferred.Deferred<boolean> }

export const INBOX_FULL_CODE = 1008
/** Questions a peer may leave unanswered at once; past it the oldest is dropped. */
const QUESTIONS_MAX = 32

const utf8 = new TextDecoder("utf-8", { fatal: true })
const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

let nextId = 0

/**
 * One actor per legacy connection. The 2.9.1 client takes the next frame after a request as its reply,
 * so one processor fiber handles, in order and one at a time: the client's frames first, then (only
 * while none wait) live messages and server questions from its mailbox, then catching up on what
 * storage holds for it. Every reply thus follows its request with nothing in between but
 * `peer_disconnected`, which the client handles apart. One writer fiber drains the bounded outbox with
 * socket backpressure.
 */
export const open = (
  deps: LegacyDeps,
  handlers: Readonly<Record<string, LegacyHandler>>,
  runtime: Runtime.Runtime<never>,
  fork: (actor: Effect.Effect<void>) => unknown,
  conn: Connection,
  registered: () => void = () => {}
): ConnectionEvents => {
  const { cfg } = deps
  const run = Runtime.runSync(runtime)
  const inbox = run(Queue.bounded<string | Uint8Array>(cfg.sessionInbox))
  const mailbox = run(Queue.bounded<Outgoing & { readonly live?: boolean }>(cfg.sessionOutbox))
  /** Characters of live messages in the mailbox and the outbox, not yet written to the socket. */
  let liveBytes = 0
  const wake = run(Queue.sliding<void>(1))
  const outbox = run(Queue.bounded<OutItem>(cfg.sessionOutbox))
  /** Characters of every frame in the outbox; the processor waits while it holds `sessionOutputBytes`. */
  let outBytes = 0
  let outRoom: Deferred.Deferred<void> | undefined
  const closed = run(Deferred.make<void>())
  const id = ++nextId
  const questions = new Map<string, Deferred.Deferred<unknown, QuestionFailure>>()
  const unwritten: Array<string> = []
  let registration: LegacyRegistration | undefined
  let nonce: string | undefined
  let closing = false
  /** Storage may hold messages for it: live delivery waits until it has caught up. */
  let flushRequested = false
  /** A catch-up is under way (possibly paused for a request): live messages go through storage. */
  let flushing = false
  let drainSignal: Deferred.Deferred<void> | undefined

  const sizeOf = (q: { readonly unsafeSize: () => Option.Option<number> }) => Option.getOrElse(q.unsafeSize(), () => 0)
  const poke = () => {
    wake.unsafeOffer(undefined)
  }

  const remember = (questionId: string, d: Deferred.Deferred<unknown, QuestionFailure>) => {
    if (questions.size >= QUESTIONS_MAX) {
      const [oldest, waiter] = questions.entries().next().value!
      questions.delete(oldest)
      Deferred.unsafeDone(waiter, Exit.fail("Busy"))
    }
    questions.set(questionId, d)
  }

  const peerOf = (clientId: string, publicKey: ReadonlyArray<number>, signer: string): LegacyPeer => ({
    sessionId: id,
    clientId,
    signer,
    get publicKey() {
      return registration?.publicKey ?? publicKey
    },
    canAccept: () =>
      !closing && !flushRequested && !flushing && sizeOf(mailbox) < cfg.sessionOutbox && liveBytes < cfg.sessionOutboxBytes,
    deliver: (text, messageId) => {
      if (closing || liveBytes + text.length > cfg.sessionOutboxBytes || !mailbox.unsafeOffer({ text, messageId, live: true })) {
        flushRequested = true
        return false
      }
      liveBytes += text.length
      poke()
      return true
    },
    requestFlush: () => {
      flushRequested = true
      poke()
    },
    notify: (text) => {
      if (!closing && outbox.unsafeOffer({ text })) outBytes += text.length
    },
    ask: (questionId, question) => {
      if (closing) return undefined
      const text = encodeFrame("server_question", { questionId, question })
      if (!mailbox.unsafeOffer({ text })) return undefined
      const d = run(Deferred.make<unknown, QuestionFailure>())
      remember(questionId, d)
      poke()
      return d
    },
    forget: (questionId) => {
      questions.delete(questionId)
    },
    close: (code, reason) => conn.close(code, reason),
    evict: (text, code, reason) => {
      closing = true
      conn.send(text)
      conn.close(code, reason)
    }
  })

  const state: LegacySessionState = {
    id,
    remoteAddress: conn.remoteAddress,
    get registration() {
      return registration
    },
    reply: (type, payload) => toOutbox({ text: encodeFrame(type, payload) }),
    register: (clientId, publicKey, signer) =>
      registration = registration?.clientId === clientId
        ? { ...registration, publicKey, signer }
        : { clientId, publicKey, signer, peer: peerOf(clientId, publicKey, signer) },
    registered,
    unregister: () => {
      registration = undefined
    },
    issueNonce: (n) => {
      nonce = n
    },
    takeNonce: () => {
      const n = nonce
      nonce = undefined
      return n
    },
    expect: (questionId) => remember(questionId, run(Deferred.make<unknown, QuestionFailure>())),
    answer: (questionId, response) => {
      const d = questions.get(questionId)
      if (d === undefined) return false
      questions.delete(questionId)
      Deferred.unsafeDone(d, Exit.succeed(response))
      return true
    }
  }

  const errorFrame = (error: LegacyError) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => toOutbox({ text: encodeError(error, now) }))

  const writer = Effect.gen(function*() {
    while (true) {
      const item = yield* Queue.take(outbox)
      if ("marker" in item) {
        yield* Deferred.succeed(item.marker, true)
        continue
      }
      if (item.live === true) liveBytes -= item.text.length
      outBytes -= item.text.length
      if (outRoom !== undefined) {
        Deferred.unsafeDone(outRoom, Exit.void)
        outRoom = undefined
      }
      const result = conn.send(item.text)
      if (result === "closed") {
        if (item.messageId !== undefined) unwritten.push(item.messageId)
        return
      }
      if (result === "backpressure") {
        drainSignal = yield* Deferred.make<void>()
        // A reader that takes nothing for this long is let go, with what waits for it.
        const drained = yield* Deferred.await(drainSignal).pipe(Effect.timeout(cfg.stalledSocketMillis), Effect.option)
        drainSignal = undefined
        if (Option.isNone(drained)) {
          conn.terminate()
          return
        }
      }
    }
  })

  /**
   * Queues a frame of the session's own, waiting while the outbox holds `sessionOutputBytes` (one frame
   * of any size goes into an empty one). Only the processor fiber queues this way, so there is one waiter.
   */
  const toOutbox = (item: Outgoing & { readonly live?: boolean }): Effect.Effect<void> =>
    Effect.suspend(function wait(): Effect.Effect<void> {
      if (outBytes > 0 && outBytes + item.text.length > cfg.sessionOutputBytes) {
        return Effect.flatMap(Deferred.make<void>(), (room) => {
          outRoom = room
          // The writer may have taken frames since the check above, before there was a room to signal.
          if (outBytes === 0 || outBytes + item.text.length <= cfg.sessionOutputBytes) return Effect.suspend(wait)
          return Effect.zipRight(Deferred.await(room), Effect.suspend(wait))
        }).pipe(
          // A live message interrupted while it waits here goes back to the recipient's queue with the rest.
          Effect.onInterrupt(() => Effect.sync(() => item.messageId !== undefined && unwritten.push(item.messageId)))
        )
      }
      outBytes += item.text.length
      return Queue.offer(outbox, item).pipe(Effect.asVoid)
    })

  const written = Effect.flatMap(Deferred.make<boolean>(), (marker) =>
    Queue.offer(outbox, { marker }).pipe(Effect.zipRight(Deferred.await(marker))))

  const frameBucket = new TokenBucket(cfg.connectionFrameBurst, cfg.connectionFrameRate, 0)

  const handle = (data: string | Uint8Array) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (!frameBucket.tryTake(now)) return yield* errorFrame(refuse("RATE_LIMITED", "Too many frames"))
      const size = typeof data === "string" ? data.length : data.byteLength
      if (size > cfg.maxFrameChars) {
        return yield* errorFrame(refuse("INVALID_MESSAGE", `Message too large (max ${cfg.maxFrameChars} characters)`))
      }
      const text = typeof data === "string" ? data : decodeUtf8(data)
      if (text === undefined) return yield* errorFrame(refuse("INVALID_MESSAGE", "Binary frame is not valid UTF-8"))
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
      pending: () => sizeOf(inbox) > 0,
      send: (text) => toOutbox({ text }),
      written
    }).pipe(
      Effect.map((done) => {
        if (done) flushing = false
        else flushRequested = true
      }),
      Effect.catchAllCause((cause) =>
        Effect.logError("legacy catch-up delivery failed", cause).pipe(Effect.ensuring(Effect.sync(() => {
          flushing = false
        })))
      )
    )
  })

  // Requests first; then live mail (older than anything queued since, as queueing starts when the
  // mailbox overflows and live delivery stays off while catching up); catching up last.
  const step = Effect.gen(function*() {
    const frame = yield* Queue.poll(inbox)
    if (Option.isSome(frame)) return yield* handle(frame.value)
    const mail = yield* Queue.poll(mailbox)
    if (Option.isSome(mail)) return yield* toOutbox(mail.value)
    if (flushRequested && registration !== undefined) return yield* flush
    yield* Queue.take(wake)
  })

  /** Leaves the registry at once, so the id is free and its peers told even before in-flight work ends. */
  const leave = Effect.suspend(() => {
    closing = true
    const reg = registration
    if (reg === undefined) return Effect.void
    return Effect.flatMap(deps.peers.release(reg.peer), (released) =>
      released ? deps.peers.notifyAll(encodeFrame("peer_disconnected", { peerId: reg.clientId })) : Effect.void)
  })

  const cleanup = Effect.gen(function*() {
    // Again: a registration that completed while the socket was closing.
    yield* leave
    const clientId = registration?.clientId
    registration = undefined
    for (const d of questions.values()) Deferred.unsafeDone(d, Exit.fail("Disconnected"))
    questions.clear()
    // Live messages never written go back to the recipient's queue.
    for (const item of yield* Queue.takeAll(mailbox)) if (item.messageId !== undefined) unwritten.push(item.messageId)
    for (const item of yield* Queue.takeAll(outbox)) {
      if ("text" in item && item.messageId !== undefined) unwritten.push(item.messageId)
    }
    if (unwritten.length > 0) {
      yield* deps.storage.requeue(unwritten).pipe(
        Effect.catchAll((e) => Effect.logError("requeue of unwritten legacy messages failed", e.cause))
      )
      // A session that took the id over meanwhile has caught up already: it gets them now.
      if (clientId !== undefined) (yield* deps.peers.get(clientId))?.requestFlush()
    }
    yield* Queue.shutdown(inbox)
    yield* Queue.shutdown(mailbox)
    yield* Queue.shutdown(outbox)
    yield* Queue.shutdown(wake)
  })

  const actor = Effect.gen(function*() {
    yield* Effect.forkScoped(writer)
    yield* Effect.forkScoped(Effect.forever(step))
    yield* Deferred.await(closed)
  }).pipe(Effect.scoped, Effect.ensuring(cleanup), Effect.annotateLogs({ legacySession: id }))

  fork(actor)

  return {
    message: (data) => {
      if (closing) return
      if (!inbox.unsafeOffer(data)) return conn.close(INBOX_FULL_CODE, "Too many frames in flight")
      poke()
    },
    drain: () => {
      if (drainSignal !== undefined) Deferred.unsafeDone(drainSignal, Exit.void)
    },
    closed: () => {
      run(leave)
      Deferred.unsafeDone(closed, Exit.void)
    }
  }
}
