import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, payloadOf, PublicKeyPayload } from "../../domain/Frames.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { SessionState } from "../SessionState.ts"

export const discover = (deps: RelayDeps) => (session: SessionState, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before discovering peers")
    const peers = yield* deps.sessions.keys(reg.l2psUid)
    yield* session.reply("discover_response", { peers }, frame.requestId)
  })

const decodeTarget = payloadOf(PublicKeyPayload, "Missing targetId")

/** The key of a peer online in the caller's network, else null (never PEER_NOT_FOUND, as the reference). */
export const requestPublicKey = (deps: RelayDeps) => (session: SessionState, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before requesting public keys")
    const { targetId } = yield* decodeTarget(frame.payload)
    if (!isPublicKey(targetId)) return yield* invalid("Invalid targetId format (expected 64 hex characters)")
    const key = normalizeKey(targetId)
    const online = yield* deps.sessions.online(reg.l2psUid, key)
    yield* session.reply("public_key_response", {
      targetId,
      publicKey: online.length > 0 ? key : null
    }, frame.requestId)
  })
