import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Clock from "effect/Clock"
import * as Exit from "effect/Exit"
import * as Predicate from "effect/Predicate"
import * as Metrics from "../../internal/Metrics.ts"
import { invalid, refuse, RequestError } from "../../domain/ErrorCode.ts"
import {
  type Envelope,
  MAX_ENCRYPTED_FIELD as MAX_FIELD,
  MAX_MESSAGE_HASH as MAX_HASH,
  maxEncryptedChars,
  type RequestId
} from "../../domain/Frames.ts"
import { isStorableText, jsonbRefusal } from "../../domain/JsonbRefusal.ts"
import { rawMember } from "../../domain/RawJson.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import type { CommitResult, NewMessage, StorageError } from "../../storage/Storage.ts"
import type { Peer } from "../Peers.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { Registration, ConnectionContext } from "../ConnectionContext.ts"
import type { Completion } from "../Committer.ts"
import type { Verdict } from "../../limits/RateLimits.ts"
import type { NetworkLimits } from "../../config/NodeConfig.ts"
import { CONVERSATION_MAX_PER_SECOND } from "../../limits/ServerClock.ts"
import { DISTINCT_MAX_PER_SECOND } from "../../domain/Timestamps.ts"
import { copyFrame, messageFrame } from "./Delivery.ts"

export { maxEncryptedChars }

export const REUSED_HASH = "Duplicate message: this messageHash was already sent to another recipient"

interface Valid {
  readonly to: string
  readonly messageHash: string
  /** The `encrypted` object's text as the sender wrote it: stored and relayed as is. */
  readonly encryptedJson: string
}

/**
 * The send's payload checked, in plain code: every send goes through it. It accepts what `sendPayload`
 * (src/domain/Frames.ts) accepts, a send to `self` aside (test/domain/FastPath.test.ts); `text` is the
 * whole frame as received, whose `encrypted` member is stored as written.
 */
export const validate = (maxCiphertextChars: number, self: string, p: Record<string, unknown>, text: string): Valid | RequestError => {
  if (
    typeof p.to !== "string" || p.to.length === 0 || typeof p.messageHash !== "string" || p.messageHash.length === 0 ||
    !Predicate.isRecord(p.encrypted)
  ) return invalid("Missing to, encrypted, or messageHash")
  // What the real clients write (PROTOCOL-REFERENCE.md §3.2.6, src/client/L2psCrypto.ts): anything else
  // would be stored and relayed unchecked.
  let members = 0
  for (const member in p.encrypted) {
    if (member !== "ciphertext" && member !== "nonce" && member !== "ephemeralKey") {
      return invalid("Encrypted payload may only have ciphertext, nonce and ephemeralKey")
    }
    members++
  }
  const { ciphertext, nonce, ephemeralKey } = p.encrypted
  if (typeof ciphertext !== "string" || ciphertext.length === 0 || typeof nonce !== "string" || nonce.length === 0) {
    return invalid("Encrypted payload must have ciphertext and nonce")
  }
  if (ciphertext.length > maxCiphertextChars) {
    return invalid(`Ciphertext too large (max ${maxCiphertextChars} bytes)`)
  }
  if (nonce.length > MAX_FIELD || (ephemeralKey !== undefined && (typeof ephemeralKey !== "string" || ephemeralKey.length > MAX_FIELD))) {
    return invalid(`nonce and ephemeralKey must be strings of at most ${MAX_FIELD} characters`)
  }
  if (p.messageHash.length > MAX_HASH) return invalid(`messageHash too long (max ${MAX_HASH} characters)`)
  // Stored as text, which holds neither NUL nor half a surrogate pair (the driver would change it).
  if (!isStorableText(p.messageHash)) {
    return invalid("messageHash must not contain NUL or unpaired surrogates")
  }
  if (!isPublicKey(p.to)) return invalid("Invalid recipient key (expected 64 hex characters)")
  const to = normalizeKey(p.to)
  if (to === self) return invalid("Cannot send message to yourself")
  // Found whenever the frame parsed with an object there; serialised only if the scan ever disagreed.
  const encryptedJson = rawMember(text, ["payload", "encrypted"]) ?? JSON.stringify(p.encrypted)
  const max = maxEncryptedChars(maxCiphertextChars)
  if (encryptedJson.length > max) return invalid(`Encrypted payload too large (max ${max} characters as sent)`)
  // Written compactly without escapes (as JSON.stringify writes it), the text is exactly its members as
  // strings: nothing jsonb could refuse, known in O(1). Anything else is scanned.
  const compact = members + 1 + 15 + ciphertext.length + 10 + nonce.length +
    (ephemeralKey === undefined ? 0 : 17 + (ephemeralKey as string).length)
  if (encryptedJson.length !== compact || encryptedJson.indexOf("\\") >= 0) {
    const refused = jsonbRefusal(encryptedJson)
    if (refused !== undefined) return invalid(`Encrypted payload cannot be stored: it holds ${refused}`)
  }
  return { to, messageHash: p.messageHash, encryptedJson }
}

const refusal = (verdict: Verdict, limits: NetworkLimits): RequestError | undefined =>
  verdict === "rate"
    ? refuse("RATE_LIMITED", `Rate limit exceeded (${limits.rateLimitPerSec} messages/s)`)
    : verdict === "quota"
    ? refuse("RATE_LIMITED", `Quota exceeded (${limits.epochQuota} messages per ${limits.epochSeconds} s)`)
    : undefined

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * The message to commit, with the recipient's sessions it is delivered to live. Its timestamp is set by
 * `stamp` once the send is accepted: a refused send must not move the conversation's clock.
 */
const prepare = (deps: RelayDeps, reg: Registration, p: Valid) => {
  const live = deps.peers.unsafeOnline(reg.l2psUid, p.to).filter((r) => r.canAccept())
  const message: Mutable<NewMessage> = {
    l2psUid: reg.l2psUid,
    from: reg.key,
    to: p.to,
    messageHash: p.messageHash,
    encryptedJson: p.encryptedJson,
    timestamp: 0,
    ...(live.length === 0
      ? { deliveryStatus: "queued", awaitingAck: false, outcome: "queued" }
      : live.some((r) => !r.ackCapable)
      ? { deliveryStatus: "delivered", awaitingAck: false, outcome: "sent" }
      : { deliveryStatus: "sent", awaitingAck: true, outcome: "sent" })
  }
  return { message, live }
}

/** Gives an accepted message its timestamp; false when its conversation's clock is already too far ahead. */
const stamp = (deps: RelayDeps, message: Mutable<NewMessage>, now: number): boolean => {
  const ts = deps.clock.unsafeNext(message.l2psUid, message.from, message.to, now)
  if (ts === undefined) return false
  message.timestamp = ts
  return true
}

const conversationBusy = refuse(
  "RATE_LIMITED",
  `Too many messages in this conversation (more than ${CONVERSATION_MAX_PER_SECOND}/s), try again shortly`
)

/** Refused by storage: on nodes sharing a database, a conversation's timestamps are distinct. */
const sharedClockBusy = refuse(
  "RATE_LIMITED",
  `Too many messages in this conversation (more than ${DISTINCT_MAX_PER_SECOND}/s), try again shortly`
)

const completion = (deps: RelayDeps, session: ConnectionContext, requestId: RequestId | undefined, message: NewMessage, live: ReadonlyArray<Peer>): Completion =>
(outcome, now) => {
  session.endSend()
  return complete(deps, session, requestId, message, live, outcome, now)
}

/**
 * A send accepted without leaving the connection's callback: the common case (a valid send, within its
 * limits, with room in the session's pipeline and the commit queue) costs no fiber. False, with nothing
 * changed, for anything else: the frame then takes the `send` handler's way, which waits or answers.
 */
export const unsafeSend = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope, text: string, now: number): boolean => {
  const reg = session.registration
  if (reg === undefined) return false
  const p = validate(deps.cfg.maxCiphertextChars, reg.key, frame.payload, text)
  if (p instanceof RequestError || !session.unsafeBeginSend()) return false
  const { live, message } = prepare(deps, reg, p)
  const request = { message, pairLimit: reg.limits.offlineQueuePerPair, quota: reg.limits }
  // Room first: the rate limiter's token, once taken, cannot be given back.
  if (!deps.committer.hasRoomFor(request) || deps.rateLimits.unsafeTake(reg.l2psUid, reg.key, reg.limits, now) !== "ok") {
    session.endSend()
    return false
  }
  // Answered here: the token is spent, so the handler must not take another.
  if (!stamp(deps, message, now)) {
    session.endSend()
    session.unsafeRefuseSend(conversationBusy, frame.requestId, now)
    return true
  }
  return deps.committer.unsafeSubmit(request, completion(deps, session, frame.requestId, message, live))
}

export const send = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope, text: string) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before sending")
    const p = validate(deps.cfg.maxCiphertextChars, reg.key, frame.payload, text)
    if (p instanceof RequestError) return yield* p
    const refused = refusal(yield* deps.rateLimits.take(reg.l2psUid, reg.key, reg.limits), reg.limits)
    if (refused !== undefined) return yield* refused
    const { live, message } = prepare(deps, reg, p)
    if (!stamp(deps, message, yield* Clock.currentTimeMillis)) return yield* conversationBusy
    // The commit is queued now; its outcome is delivered and answered by the committer, in order, while
    // this session goes on reading frames.
    // Counted and queued as one step: a session closing in between would wait for a send never queued.
    yield* Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(session.beginSend),
        deps.committer.submit(
          { message, pairLimit: reg.limits.offlineQueuePerPair, quota: reg.limits },
          completion(deps, session, frame.requestId, message, live)
        )
      )
    )
  })

/**
 * Hands a committed message to the recipient's live sessions (or leaves it in its queue) and answers
 * the sender. Runs on the committer's fiber even when the sender has gone: a stored message is never
 * left marked delivered without being pushed; only the reply goes with the socket.
 */
const complete = (
  deps: RelayDeps,
  session: ConnectionContext,
  requestId: RequestId | undefined,
  message: NewMessage,
  live: ReadonlyArray<Peer>,
  outcome: Exit.Exit<CommitResult, StorageError>,
  now: number
): Effect.Effect<void> | undefined => {
  if (Exit.isFailure(outcome)) {
    session.unsafeFail(refuse("L2PS_SUBMIT_FAILED", "Storage unavailable, message not accepted"), requestId, now)
    return Effect.logError("commit failed", Cause.map(outcome.cause, (e) => e.cause))
  }
  const result = outcome.value
  switch (result._tag) {
    case "PairLimit":
      session.unsafeRefuseSend(refuse("RATE_LIMITED", "Offline message limit reached"), requestId, now)
      return undefined
    case "SenderQuota":
      session.unsafeRefuseSend(refuse("RATE_LIMITED", `Offline message limit reached (${result.limit} bytes waiting from this sender)`), requestId, now)
      return undefined
    case "RecipientQuota":
      session.unsafeRefuseSend(refuse("RATE_LIMITED", `Offline message limit reached (${result.limit} bytes waiting for this recipient)`), requestId, now)
      return undefined
    case "Refused":
      session.unsafeRefuseSend(invalid(result.reason), requestId, now)
      return undefined
    case "ConversationBusy":
      session.unsafeRefuseSend(sharedClockBusy, requestId, now)
      return undefined
    case "Duplicate":
      // A retry gets its original outcome; the same hash to someone else would be a message never sent.
      if (result.to !== message.to) session.unsafeRefuseSend(refuse("INVALID_MESSAGE", REUSED_HASH), requestId, now)
      else reply(session, result.outcome, message.messageHash, requestId, now)
      return undefined
    case "Stored": {
      // Storage may have raised the timestamp (a clock shared with other nodes): the stored one goes out.
      const stored = result.timestamp === message.timestamp ? message : { ...message, timestamp: result.timestamp }
      const text = messageFrame(stored.from, stored.encryptedJson, stored.messageHash, false, stored.timestamp)
      let delivered = 0
      for (const r of live) {
        if (!r.push(text, r.ackCapable ? undefined : result.id)) continue
        delivered++
        if (r.ackCapable) r.handed(message.messageHash)
      }
      if (delivered > 0) Metrics.messagesOut.unsafeUpdate(delivered, [])
      // Every outbox filled up since the check: the message waits in storage like any queued one.
      const raced = live.length > 0 && delivered === 0
      // Its envelope's timestamp is the message's, as the recipient and history have it.
      reply(session, raced ? "queued" : message.outcome, message.messageHash, requestId, stored.timestamp)
      if (deps.router.clustered) deps.router.unsafeStored(message.l2psUid, message.to, result.id, message.messageHash, text)
      copyToOwnSessions(deps, session, stored)
      // Read again now: a session of the recipient that registered while this commit ran may have
      // flushed its queue before the message was in it.
      const flush = Effect.flatMap(deps.peers.online(message.l2psUid, message.to), (rs) =>
        Effect.sync(() => rs.forEach((r) => r.requestFlush())))
      if (raced) {
        return deps.storage.requeue([result.id]).pipe(
          Effect.zipRight(flush),
          Effect.catchAll((e) => Effect.logError("requeue of a raced message failed", e.cause))
        )
      }
      return live.length === 0 ? flush : undefined
    }
  }
}

/**
 * Shows the sender's other sessions that asked for it what was sent: live only and best effort, like a
 * presence frame. A copy is not queued, not acknowledged, not counted as a delivery; a session without
 * room, or offline, reads it from history.
 */
const copyToOwnSessions = (deps: RelayDeps, session: ConnectionContext, message: NewMessage) => {
  let text: string | undefined
  if (deps.router.clustered) {
    text = copyFrame(message.from, message.to, message.encryptedJson, message.messageHash, message.timestamp)
    deps.router.unsafeCopy(message.l2psUid, message.from, text)
  }
  const own = deps.peers.unsafeOnline(message.l2psUid, message.from)
  if (own.length < 2) return
  for (const r of own) {
    if (!r.copies || r.id === session.id || !r.canAccept()) continue
    text ??= copyFrame(message.from, message.to, message.encryptedJson, message.messageHash, message.timestamp)
    r.push(text)
  }
}

const reply = (session: ConnectionContext, outcome: "sent" | "queued", messageHash: string, requestId: RequestId | undefined, now: number) =>
  outcome === "sent"
    ? session.unsafeReply("message_sent", { messageHash, l2psStatus: "submitted" }, requestId, now)
    : session.unsafeReply("message_queued", { messageHash, status: "queued" }, requestId, now)
