import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { jsonbRefusal } from "../../domain/JsonbRefusal.ts"
import { LEGACY_UID } from "../../domain/LegacyUid.ts"
import type { CryptoShape } from "../../crypto/Crypto.ts"
import type { LegacyDeps } from "../LegacyDeps.ts"
import { type LegacyEnvelope, MessagePayload, payloadOf, refuse } from "../LegacyFrames.ts"
import type { LegacyConnectionContext } from "../LegacyConnectionContext.ts"
import { liveFrame } from "./Delivery.ts"
import { targetOf } from "./Lookup.ts"

const decode = payloadOf(MessagePayload, "Missing required message fields")

/** The reference's message hash: SHA-256 (hex) of exactly this JSON, key order included. */
export const messageHash = (
  crypto: Pick<CryptoShape, "sha256">,
  m: { readonly message: unknown; readonly senderId: string; readonly targetId: string; readonly timestamp: number }
): string =>
  Buffer.from(crypto.sha256(new TextEncoder().encode(JSON.stringify({
    message: m.message,
    senderId: m.senderId,
    targetId: m.targetId,
    timestamp: m.timestamp
  })))).toString("hex")

const storeFailed = (details: string) => refuse("INTERNAL_ERROR", details)

/**
 * `message`: stored first (the pipeline anchors it as network `legacy`), then relayed as
 * `{message, fromId}` with no acknowledgement to the sender; an offline owner's messages are queued
 * (`message_queued`, at most `legacyOfflinePerSender` per sender) for its next registration.
 */
export const message = (deps: LegacyDeps) => (session: LegacyConnectionContext, frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "You must register before sending messages")
    const p = yield* decode(frame.payload)
    // Stored as jsonb, which refuses some of what JSON.parse takes (`\u0000`, half a surrogate pair):
    // refused here with a clear error rather than as a failed store.
    const refused = jsonbRefusal(JSON.stringify(p.message))
    if (refused !== undefined) return yield* refuse("INVALID_MESSAGE", `Message cannot be stored: it holds ${refused}`)
    const targetId = yield* targetOf(p.targetId)
    // Per signing key, so that more clientIds buy no more messages; before any storage read or timestamp.
    const limits = deps.cfg.legacyLimits
    const verdict = yield* deps.rateLimits.take(LEGACY_UID, reg.signer, limits)
    if (verdict === "rate") return yield* refuse("RATE_LIMITED", `Rate limit exceeded (${limits.rateLimitPerSec} messages/s)`)
    if (verdict === "quota") {
      return yield* refuse("RATE_LIMITED", `Quota exceeded (${limits.epochQuota} messages per ${limits.epochSeconds} s)`)
    }
    const target = yield* deps.peers.get(targetId)
    if (target === undefined && (yield* deps.storage.client(targetId)) === undefined) {
      return yield* refuse("PEER_NOT_FOUND", `Target peer ${targetId} not found`)
    }
    // Distinct timestamps: the legacy message hash covers it, and two messages must not become one.
    const timestamp = yield* deps.clock.next(LEGACY_UID, reg.clientId, targetId, 1)
    if (timestamp === undefined) {
      return yield* refuse("RATE_LIMITED", "Too many messages in this conversation (more than 1000/s), try again shortly")
    }
    const base = {
      from: reg.clientId,
      to: targetId,
      messageHash: messageHash(deps.crypto, { message: p.message, senderId: reg.clientId, targetId, timestamp }),
      message: p.message,
      timestamp
    }

    if (target !== undefined) {
      const live = target.canAccept()
      const stored = yield* deps.storage.store({ ...base, status: live ? "delivered" : "queued", outcome: "sent" }).pipe(
        Effect.catchTag("StorageError", (e) => Effect.logError("legacy store failed", e.cause).pipe(Effect.as(undefined)))
      )
      if (stored?._tag !== "Stored") return yield* storeFailed("Failed to store message")
      yield* deps.wakeups.wake(LEGACY_UID, 1)
      if (live && target.deliver(liveFrame(p.message, reg.clientId), stored.id)) return
      // Its mailbox filled up since the check: the message waits in storage like a queued one.
      if (live) yield* deps.storage.requeue([stored.id])
      return target.requestFlush()
    }

    const cap = deps.cfg.legacyOfflinePerSender
    const stored = yield* deps.storage.store({ ...base, status: "queued", outcome: "queued" }, cap).pipe(
      Effect.catchTag("StorageError", (e) => Effect.logError("legacy store failed", e.cause).pipe(Effect.as(undefined)))
    )
    if (stored?._tag === "SenderLimit") {
      return yield* storeFailed(
        `Offline message limit reached (${cap} messages). Please wait for recipient to come online.`
      )
    }
    if (stored?._tag !== "Stored") return yield* storeFailed("Failed to store offline message")
    yield* deps.wakeups.wake(LEGACY_UID, 1)
    // The owner may have registered since the check; it then catches up.
    ;(yield* deps.peers.get(targetId))?.requestFlush()
    yield* session.reply("message_queued", {
      targetId,
      status: "offline",
      message: "Message stored for offline delivery"
    })
  })
