import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { type Envelope, payloadOf, PublicKeyPayload } from "../../domain/Frames.ts"
import { PublicKey } from "../../domain/Ids.ts"
import { isPublicKey, normalizeKey } from "../../domain/Keys.ts"
import { encodePayload, type PayloadEncoded } from "../../domain/ServerFrames.ts"
import { readCost } from "../ReadBudget.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

/** A cursor is the offset of the next page, as a decimal string (opaque to clients). */
const CURSOR = /^[0-9]{1,9}$/

/**
 * The keys online in the caller's network, at most `discoverMaxPeers` a page. Without arguments (the
 * SDK's client) the first page, which is all of them on all but the largest networks; our client follows
 * `nextCursor` (present only when more remain) with `{cursor}`, and may ask a smaller `limit`. Pages are
 * taken in registration order: a key that comes or goes between pages may be skipped or seen twice.
 */
export const discover = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before discovering peers")
    const p = frame.payload as { readonly cursor?: unknown; readonly limit?: unknown }
    const max = deps.cfg.discoverMaxPeers
    if (p.cursor !== undefined && (typeof p.cursor !== "string" || !CURSOR.test(p.cursor))) {
      return yield* invalid("cursor must be the nextCursor of a discover_response")
    }
    if (p.limit !== undefined && (typeof p.limit !== "number" || !Number.isInteger(p.limit) || p.limit < 1 || p.limit > max)) {
      return yield* invalid(`limit must be an integer from 1 to ${max}`)
    }
    const reader = { l2psUid: reg.l2psUid, key: reg.key, address: session.remoteAddress }
    if (!(yield* deps.readBudget.allow(reader))) return yield* refuse("RATE_LIMITED", "Too many reads")
    const offset = p.cursor === undefined ? 0 : Number(p.cursor)
    const { keys, total } = yield* deps.roster.keysPage(reg.l2psUid, offset, (p.limit as number | undefined) ?? max)
    yield* deps.readBudget.charge(reader, readCost(keys.length, keys.length * 67))
    const next = offset + keys.length
    // Typed by its Schema, not encoded through it: a check per key would cost more than the page (ServerFrames.ts).
    const page: PayloadEncoded<"discover_response"> = next < total ? { peers: keys, nextCursor: String(next) } : { peers: keys }
    yield* session.reply("discover_response", page, frame.requestId)
  })

const decodeTarget = payloadOf(PublicKeyPayload, "Missing targetId")

/** The key of a peer online in the caller's network, else null (never PEER_NOT_FOUND, as the reference). */
export const requestPublicKey = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before requesting public keys")
    const { targetId } = yield* decodeTarget(frame.payload)
    if (!isPublicKey(targetId)) return yield* invalid("Invalid targetId format (expected 64 hex characters)")
    const key = normalizeKey(targetId)
    const online = yield* deps.roster.isOnline(reg.l2psUid, key)
    yield* session.reply("public_key_response", encodePayload("public_key_response", {
      targetId,
      publicKey: online ? PublicKey.make(key) : null
    }), frame.requestId)
  })
