/**
 * Invite records (docs/PROTOCOL.md, "Invites"): what an account stores on the node for the people it
 * gives an invite link to, and the string its signature covers. The record itself is opaque to the node
 * (sealed under a key derived from the link's secret); the node checks only the signature by the
 * account that stores it, the size, the expiry and whether it is handed out once.
 *
 * The record's id is derived from the link's secret (one way), so fetching it shows the node nothing
 * the link did not already make it store, and guessing one means guessing 128 bits.
 */
import * as Schema from "effect/Schema"

/** 16 bytes, 32 lower-case hex characters. */
export const InviteId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{32}$/))

/** The sealed record as it travels and is stored: base64url, no padding. */
export const InviteRecord = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]+$/))

const Signature = Schema.String.pipe(Schema.pattern(/^[0-9a-fA-F]{128}$/))

/** The expiry, in ms since the epoch, in whole seconds (the link carries it in seconds). */
const ExpiresAt = Schema.Int.pipe(Schema.positive(), Schema.multipleOf(1000))

/** `invite_store`: an invite record of the registered account, signed by it. */
export const InviteStorePayload = Schema.Struct({
  inviteId: InviteId,
  record: InviteRecord,
  expiresAt: ExpiresAt,
  oneTime: Schema.Boolean,
  signature: Signature
})
export type InviteStorePayload = typeof InviteStorePayload.Type

/** `invite_fetch` and `invite_delete`: the record's id alone. */
export const InviteIdPayload = Schema.Struct({ inviteId: InviteId })

/** `invite_stored`: what the node keeps, and how many invites the account now has in this network. */
export const InviteStored = Schema.Struct({
  inviteId: InviteId,
  expiresAt: Schema.Number,
  oneTime: Schema.Boolean,
  invites: Schema.Int
})

/** `invite_response`: the record as stored (a one-time record is gone from the node once this is sent). */
export const InviteResponse = Schema.Struct({
  inviteId: InviteId,
  record: InviteRecord,
  expiresAt: Schema.Number,
  oneTime: Schema.Boolean,
  signature: Signature
})
export type InviteResponse = typeof InviteResponse.Type

/** `invite_deleted`: whether there was such a record of this account. */
export const InviteDeleted = Schema.Struct({ inviteId: InviteId, deleted: Schema.Boolean })

/**
 * What the account's ed25519 signature covers: the network, so a record is worth nothing in another;
 * the id, expiry and one-time flag, so the node cannot extend or reuse it unseen; the record itself.
 */
export const inviteSigningString = (l2psUid: string, inviteId: string, expiresAt: number, oneTime: boolean, record: string): string =>
  `invite:${l2psUid}:${inviteId}:${expiresAt}:${oneTime ? 1 : 0}:${record}`
