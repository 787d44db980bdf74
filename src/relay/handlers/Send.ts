import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../ops/Metrics.ts"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, payloadOf, SendPayload } from "../../domain/Frames.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import type { CommitResult, NewMessage, StorageError } from "../../storage/Storage.ts"
import type { Peer } from "../Sessions.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { SessionState } from "../SessionState.ts"
import { messageFrame } from "./Delivery.ts"

const decode = payloadOf(SendPayload, "Missing to, encrypted, or messageHash")
const MAX_HASH = 256
const MAX_FIELD = 4096

export const send = (deps: RelayDeps) => (session: SessionState, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before sending")
    const p = yield* decode(frame.payload)
    const { ciphertext, nonce, ephemeralKey } = p.encrypted
    if (typeof ciphertext !== "string" || ciphertext.length === 0 || typeof nonce !== "string" || nonce.length === 0) {
      return yield* invalid("Encrypted payload must have ciphertext and nonce")
    }
    if (ciphertext.length > deps.cfg.maxCiphertextChars) {
      return yield* invalid(`Ciphertext too large (max ${deps.cfg.maxCiphertextChars} bytes)`)
    }
    if (nonce.length > MAX_FIELD || (ephemeralKey !== undefined && (typeof ephemeralKey !== "string" || ephemeralKey.length > MAX_FIELD))) {
      return yield* invalid(`nonce and ephemeralKey must be strings of at most ${MAX_FIELD} characters`)
    }
    if (p.messageHash.length > MAX_HASH) return yield* invalid(`messageHash too long (max ${MAX_HASH} characters)`)
    if (!isPublicKey(p.to)) return yield* invalid("Invalid recipient key (expected 64 hex characters)")
    const to = normalizeKey(p.to)
    if (to === reg.key) return yield* invalid("Cannot send message to yourself")

    const verdict = yield* deps.rateLimits.take(reg.l2psUid, reg.key, reg.limits)
    if (verdict === "rate") {
      return yield* refuse("RATE_LIMITED", `Rate limit exceeded (${reg.limits.rateLimitPerSec} messages/s)`)
    }
    if (verdict === "quota") {
      return yield* refuse(
        "RATE_LIMITED",
        `Quota exceeded (${reg.limits.epochQuota} messages per ${reg.limits.epochSeconds} s)`
      )
    }

    const recipients = yield* deps.sessions.online(reg.l2psUid, to)
    const live = recipients.filter((r) => r.canAccept())
    const timestamp = yield* deps.clock.next
    const message: NewMessage = {
      l2psUid: reg.l2psUid,
      from: reg.key,
      to,
      messageHash: p.messageHash,
      encrypted: p.encrypted,
      timestamp,
      ...(live.length === 0
        ? { deliveryStatus: "queued", awaitingAck: false, outcome: "queued" }
        : live.some((r) => !r.ackCapable)
        ? { deliveryStatus: "delivered", awaitingAck: false, outcome: "sent" }
        : { deliveryStatus: "sent", awaitingAck: true, outcome: "sent" })
    }
    // The commit is queued now; its outcome is awaited, delivered and answered by the session's
    // completer, in order, while this session goes on reading frames.
    const outcome = yield* deps.committer.submit({ message, pairLimit: reg.limits.offlineQueuePerPair })
    yield* session.later(complete(deps, session, frame, message, live, outcome), frame.requestId)
  })

const complete = (
  deps: RelayDeps,
  session: SessionState,
  frame: Envelope,
  message: NewMessage,
  live: ReadonlyArray<Peer>,
  outcome: Effect.Effect<CommitResult, StorageError>
) =>
  // Uninterruptible up to the hand-over: a sender that leaves while its message commits must not
  // leave it stored as delivered but never pushed; only the reply goes with the socket.
  Effect.uninterruptible(handOver(deps, message, live, outcome)).pipe(
    Effect.flatMap((sendOutcome) => reply(session, sendOutcome, message.messageHash, frame))
  )

/** Awaits the commit and hands the message to the recipient's live sessions, or to its queue. */
const handOver = (
  deps: RelayDeps,
  message: NewMessage,
  live: ReadonlyArray<Peer>,
  outcome: Effect.Effect<CommitResult, StorageError>
) =>
  Effect.gen(function*() {
    const result = yield* outcome.pipe(
      Effect.catchTag("StorageError", (e) =>
        Effect.logError("commit failed", e.cause).pipe(
          Effect.zipRight(refuse("L2PS_SUBMIT_FAILED", "Storage unavailable, message not accepted"))
        ))
    )
    switch (result._tag) {
      case "PairLimit":
        return yield* refuse("RATE_LIMITED", "Offline message limit reached")
      case "Duplicate":
        if (result.from !== message.from) return yield* refuse("L2PS_SUBMIT_FAILED", "Duplicate message")
        return result.outcome
      case "Stored": {
        const text = messageFrame(message.from, message.encrypted, message.messageHash, false, message.timestamp)
        let delivered = 0
        for (const r of live) if (r.push(text, r.ackCapable ? undefined : result.id)) delivered++
        yield* Metric.increment(Metrics.messagesIn)
        if (delivered > 0) yield* Metric.incrementBy(Metrics.messagesOut, delivered)
        // Every outbox filled up since the check: the message waits in storage like any queued one.
        const raced = live.length > 0 && delivered === 0
        if (raced) yield* deps.storage.requeue([result.id])
        // Read again now: a session of the recipient that registered while this commit ran may have
        // flushed its queue before the message was in it.
        if (raced || live.length === 0) for (const r of yield* deps.sessions.online(message.l2psUid, message.to)) r.requestFlush()
        return raced ? "queued" as const : message.outcome
      }
    }
  })

const reply = (session: SessionState, outcome: "sent" | "queued", messageHash: string, frame: Envelope) =>
  outcome === "sent"
    ? session.reply("message_sent", { messageHash, l2psStatus: "submitted" }, frame.requestId)
    : session.reply("message_queued", { messageHash, status: "queued" }, frame.requestId)
