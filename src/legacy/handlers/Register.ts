import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { LegacyDeps } from "../LegacyDeps.ts"
import { base64Bytes, type LegacyEnvelope, payloadOf, publicKeyBytes, refuse, RegisterPayload } from "../LegacyFrames.ts"
import type { LegacySessionState } from "../LegacySessionState.ts"
import { CLIENT_ID_RULE, normalizeClientId } from "../ClientId.ts"

const decode = payloadOf(RegisterPayload, "Invalid message schema")

const taken = (clientId: string) => refuse("CLIENT_ID_TAKEN", `Client ID ${clientId} is already taken`)

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/**
 * `register`: the ML-DSA proof must sign exactly the registered ML-KEM key; a clientId belongs to the
 * signing key that first registered it (in storage, so also while its owner is offline). The reply is
 * followed by what the offline store holds for the client.
 */
export const register = (deps: LegacyDeps) => (session: LegacySessionState, frame: LegacyEnvelope) =>
  Effect.gen(function*() {
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
    // Only now, so that who is online and which ids exist is told to no one without a valid proof.
    const live = yield* deps.peers.get(clientId)
    if (live !== undefined && live.sessionId !== session.id) return yield* taken(clientId)
    const owner = yield* deps.storage.client(clientId)
    if (owner !== undefined && !sameBytes(owner.signingKey, signingKey)) return yield* taken(clientId)

    const now = yield* Clock.currentTimeMillis
    // A concurrent first registration with another key may have bound the id since the check.
    if (!(yield* deps.storage.bind({ clientId, signingKey, publicKey, registeredAt: now }))) {
      return yield* taken(clientId)
    }
    const reg = session.register(clientId, Array.from(publicKey))
    // Live delivery starts once the offline store is delivered, so nothing overtakes older messages.
    reg.peer.requestFlush()
    if (!(yield* deps.peers.claim(reg.peer))) {
      session.unregister()
      return yield* taken(clientId)
    }
    yield* session.reply("register", { success: true, clientId })
  })
