import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { legacyChallengeMessage } from "../../domain/LegacyChallenge.ts"
import { CLIENT_ID_RULE, normalizeClientId } from "../ClientId.ts"
import type { LegacyDeps } from "../LegacyDeps.ts"
import {
  base64Bytes,
  encodeError,
  type LegacyEnvelope,
  payloadOf,
  publicKeyBytes,
  refuse,
  RegisterPayload
} from "../LegacyFrames.ts"
import type { LegacyConnectionContext } from "../LegacyConnectionContext.ts"

const decode = payloadOf(RegisterPayload, "Invalid message schema")

/** A clientId as a ban names it: one of 64 hex digits is taken for a key, in lower case. */
export const bannedFormOf = (clientId: string): string => (/^[0-9A-Fa-f]{64}$/.test(clientId) ? clientId.toLowerCase() : clientId)

const taken = (clientId: string) => refuse("CLIENT_ID_TAKEN", `Client ID ${clientId} is already taken`)

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** The close code of a session whose clientId a newer registration of the same signing key took over. */
export const REPLACED_CODE = 4001
const REPLACED_REASON = "Replaced by a newer registration of the same client ID"

/** Replaced ML-KEM keys remembered per clientId; a key rotated more often than this is rare. */
export const REPLACED_KEYS_MAX = 64

/**
 * `register`: the ML-DSA proof must sign exactly the registered ML-KEM key, and nothing about the id is
 * told before it verifies. A clientId belongs to the signing key that first registered it (in storage,
 * so also while its owner is offline); an ML-KEM key it replaced is never accepted again; once its owner
 * proved a `challenge`, static proofs no longer register it. The newest registration of the owner takes
 * the id over from a live session, which is told (`SESSION_REPLACED`) and closed. The reply is followed
 * by what the offline store holds for the client.
 */
// No span here (nor on the L2PS register): a span per registration held ~18 KB per session in the
// 10,000-session bench (21.4 → 39 KB RSS each); the storage calls it makes carry their own.
export const register = (deps: LegacyDeps) => (session: LegacyConnectionContext, frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    // Taken first, so a nonce serves one attempt even when the request is refused.
    const nonce = session.takeNonce()
    const p = yield* decode(frame.payload)
    const clientId = normalizeClientId(p.clientId)
    if (clientId === undefined) return yield* refuse("INVALID_MESSAGE", `Invalid client ID (${CLIENT_ID_RULE})`)
    const current = session.registration
    if (current !== undefined && current.clientId !== clientId) {
      return yield* refuse("INVALID_MESSAGE", `This connection is already registered as ${current.clientId}`)
    }
    const publicKey = publicKeyBytes(p.publicKey)
    if (publicKey === undefined) return yield* refuse("INVALID_PUBLIC_KEY", "Invalid public key format")

    // Before the ML-DSA verification, the costly part of a flood.
    if (!(yield* deps.addressLimits.register(session.remoteAddress))) {
      return yield* refuse("RATE_LIMITED", "Too many registrations from this address")
    }
    const v = p.verification
    if (v.algorithm !== "ml-dsa") return yield* refuse("INVALID_PROOF", "Unsupported proof algorithm (expected ml-dsa)")
    const signature = base64Bytes(v.serializedSignedData)
    const signingKey = base64Bytes(v.serializedPublicKey)
    const signed = base64Bytes(v.serializedMessage)
    if (signature === undefined || signingKey === undefined || signed === undefined) {
      return yield* refuse("INVALID_PROOF", "Invalid proof encoding")
    }
    if (!sameBytes(signed, publicKey)) return yield* refuse("INVALID_PROOF", "The proof must sign the registered public key")
    const valid = yield* deps.validators.verify({ algorithm: "ml-dsa-65", publicKey: signingKey, message: signed, signature })
    if (!valid) return yield* refuse("INVALID_PROOF", "Invalid proof")

    const challenged = p.challenge !== undefined
    if (p.challenge !== undefined) {
      if (nonce === undefined || p.challenge.nonce !== nonce) {
        return yield* refuse("INVALID_PROOF", "Unknown or used challenge: ask `challenge` again before registering")
      }
      const answer = base64Bytes(p.challenge.signature)
      const message = legacyChallengeMessage({ nodeKeyHex: deps.nodeKey.publicKeyHex, clientId, nonce, publicKey })
      const proven = answer !== undefined &&
        (yield* deps.validators.verify({ algorithm: "ml-dsa-65", publicKey: signingKey, message, signature: answer }))
      if (!proven) return yield* refuse("INVALID_PROOF", "Invalid challenge signature")
    } else if (deps.cfg.legacyRequireChallenge) {
      return yield* refuse("INVALID_PROOF", "This node requires a challenge-signed registration (see `challenge`)")
    }

    // After the proofs: whether an id or a key is banned is told only to who holds it.
    const signer = Buffer.from(deps.crypto.sha256(signingKey)).toString("hex")
    if (deps.bans.isBanned(bannedFormOf(clientId)) || deps.bans.isBanned(signer)) {
      return yield* refuse("KEY_BANNED", "This client ID or signing key is banned on this node")
    }
    const now = yield* Clock.currentTimeMillis
    const bound = yield* deps.storage.bind({ clientId, signingKey, publicKey, registeredAt: now }, {
      challenged,
      maxIdsPerKey: deps.cfg.legacyClientIdsPerKey,
      replacedKeysMax: REPLACED_KEYS_MAX
    })
    switch (bound) {
      case "Taken":
        return yield* taken(clientId)
      case "ReplacedKey":
        return yield* refuse("INVALID_PUBLIC_KEY", `This public key was replaced for ${clientId} and cannot be registered again`)
      case "ChallengeRequired":
        return yield* refuse("INVALID_PROOF", `Client ID ${clientId} requires a challenge-signed registration`)
      case "KeyLimit":
        return yield* refuse(
          "RATE_LIMITED",
          `This signing key holds the most client IDs allowed (${deps.cfg.legacyClientIdsPerKey})`
        )
      case "Bound":
        break
    }
    const reg = session.register(clientId, Array.from(publicKey), signer)
    // Live delivery starts once the offline store is delivered, so nothing overtakes older messages.
    reg.peer.requestFlush()
    const previous = yield* deps.peers.takeOver(reg.peer)
    previous?.evict(
      encodeError(refuse("SESSION_REPLACED", `Client ID ${clientId} was registered again from another connection`), now),
      REPLACED_CODE,
      REPLACED_REASON
    )
    session.registered()
    yield* session.reply("register", { success: true, clientId })
  })
