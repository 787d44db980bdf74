import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import type { Envelope } from "../../domain/Frames.ts"
import { payloadOf } from "../../domain/Frames.ts"
import { InviteIdPayload, inviteSigningString, InviteStorePayload } from "../../domain/Invites.ts"
import { hexToBytes } from "../../domain/Keys.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import { readCost } from "../ReadBudget.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

const decodeStore = payloadOf(
  InviteStorePayload,
  "Invalid invite_store payload: needs inviteId (32 hex), record (base64url), expiresAt (ms, whole seconds), oneTime, signature (128 hex)"
)
const decodeFetch = payloadOf(InviteIdPayload, "Invalid invite_fetch payload: needs inviteId (32 lower-case hex)")
const decodeDelete = payloadOf(InviteIdPayload, "Invalid invite_delete payload: needs inviteId (32 lower-case hex)")

/**
 * A lookup that finds nothing costs this much of the read budget: ids are 128 bits, so guessing is
 * hopeless anyway, but a key that only misses is not looking up links it was given.
 */
const MISS_COST = 50

const encoder = new TextEncoder()

const registered = (session: ConnectionContext, what: string) =>
  session.registration === undefined
    ? Effect.fail(refuse("REGISTRATION_REQUIRED", `Register before ${what}`))
    : Effect.succeed(session.registration)

/** `invite_store`: a record signed by the session's account, within the size, expiry and count bounds. */
export const inviteStore = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "storing an invite")
    const p = yield* decodeStore(frame.payload)
    if (p.record.length > deps.cfg.inviteRecordMaxChars) {
      return yield* invalid(`The invite record has ${p.record.length} characters; at most ${deps.cfg.inviteRecordMaxChars}`)
    }
    const now = yield* Clock.currentTimeMillis
    if (p.expiresAt <= now) return yield* invalid("The invite's expiresAt is in the past")
    if (p.expiresAt > now + deps.cfg.inviteMaxTtlMillis) {
      return yield* invalid(`The invite's expiresAt is more than ${Math.floor(deps.cfg.inviteMaxTtlMillis / 1000)} s ahead`)
    }
    const ok = yield* deps.validators.verify({
      algorithm: "ed25519",
      publicKey: reg.keyBytes,
      message: encoder.encode(inviteSigningString(reg.l2psUid, p.inviteId, p.expiresAt, p.oneTime, p.record)),
      signature: hexToBytes(p.signature)
    })
    if (!ok) return yield* refuse("INVALID_SIGNATURE", "The invite record is not signed by this key")
    const result = yield* deps.invites.store({
      l2psUid: reg.l2psUid,
      inviteId: p.inviteId,
      account: reg.key,
      record: p.record,
      signature: p.signature.toLowerCase(),
      expiresAt: p.expiresAt,
      oneTime: p.oneTime
    }, now, deps.cfg.invitesPerKey)
    switch (result._tag) {
      case "Limit":
        return yield* refuse("INVITE_LIMIT", `This key has the most invites allowed (${result.limit}): delete one (invite_delete) or wait for one to expire`)
      case "Taken":
        return yield* refuse("INVITE_LIMIT", "This inviteId is taken: make a new secret")
      case "Stored":
        return yield* session.reply("invite_stored", encodePayload("invite_stored", {
          inviteId: p.inviteId,
          expiresAt: p.expiresAt,
          oneTime: p.oneTime,
          invites: result.invites
        }), frame.requestId)
    }
  })

/**
 * `invite_fetch`: the record of an id, to any registered key (the link is the permission). Unknown,
 * expired, deleted and already-fetched one-time records are alike `INVITE_NOT_FOUND`.
 */
export const inviteFetch = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "fetching an invite")
    const p = yield* decodeFetch(frame.payload)
    const reader = { l2psUid: reg.l2psUid, key: reg.key, address: session.remoteAddress }
    if (!(yield* deps.readBudget.allow(reader))) return yield* refuse("RATE_LIMITED", "Too many reads")
    const found = yield* deps.invites.fetch(reg.l2psUid, p.inviteId, yield* Clock.currentTimeMillis)
    if (found === undefined) {
      yield* deps.readBudget.charge(reader, MISS_COST)
      return yield* refuse("INVITE_NOT_FOUND", "No such invite: it expired, was deleted, was used already (one-time) or never existed")
    }
    yield* deps.readBudget.charge(reader, readCost(1, found.record.length))
    yield* session.reply("invite_response", encodePayload("invite_response", {
      inviteId: found.inviteId,
      record: found.record,
      expiresAt: found.expiresAt,
      oneTime: found.oneTime,
      signature: found.signature
    }), frame.requestId)
  })

/** `invite_delete`: the session's account withdraws one of its records. */
export const inviteDelete = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = yield* registered(session, "deleting an invite")
    const p = yield* decodeDelete(frame.payload)
    const deleted = yield* deps.invites.remove(reg.l2psUid, reg.key, p.inviteId)
    yield* session.reply("invite_deleted", encodePayload("invite_deleted", { inviteId: p.inviteId, deleted }), frame.requestId)
  })
