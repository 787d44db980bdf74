import * as Effect from "effect/Effect"
import type { LegacyDeps } from "../LegacyDeps.ts"
import { type LegacyEnvelope, payloadOf, refuse, TargetPayload } from "../LegacyFrames.ts"
import type { LegacyConnectionContext } from "../LegacyConnectionContext.ts"
import { CLIENT_ID_RULE, normalizeClientId } from "../ClientId.ts"

/** A target as the registry names it; an id no one may register is refused as not found. */
export const targetOf = (raw: string) => {
  const id = normalizeClientId(raw)
  return id !== undefined ? Effect.succeed(id) : refuse("PEER_NOT_FOUND", `Target peer not found: invalid client ID (${CLIENT_ID_RULE})`)
}

/**
 * The registered clientIds, the caller's included, in registration order: at most `discoverMaxPeers`
 * (the 2.9.1 client takes one answer, so there is no next page).
 */
export const discover = (deps: LegacyDeps) => (session: LegacyConnectionContext, _frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    if (session.registration === undefined) {
      return yield* refuse("REGISTRATION_REQUIRED", "You must register before discovering peers")
    }
    const ids = yield* deps.peers.ids
    yield* session.reply("discover", { peers: ids.length > deps.cfg.discoverMaxPeers ? ids.slice(0, deps.cfg.discoverMaxPeers) : ids })
  })

const decodeTarget = payloadOf(TargetPayload, "Missing target ID")

/** The key of a live peer, else the stored key of its offline owner (so messages can be left for it). */
export const requestPublicKey = (deps: LegacyDeps) => (session: LegacyConnectionContext, frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    if (session.registration === undefined) {
      return yield* refuse("REGISTRATION_REQUIRED", "You must register before requesting public keys")
    }
    const asked = (yield* decodeTarget(frame.payload)).targetId
    const targetId = yield* targetOf(asked)
    const live = yield* deps.peers.get(targetId)
    const publicKey = live !== undefined
      ? live.publicKey
      : Array.from((yield* deps.storage.client(targetId))?.publicKey ?? [])
    if (publicKey.length === 0) return yield* refuse("PEER_NOT_FOUND", `Target peer ${targetId} not found`)
    // The id as asked: the 2.9.1 client matches the reply on it.
    yield* session.reply("public_key_response", { peerId: asked, publicKey })
  })
