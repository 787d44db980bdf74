/**
 * The ids frames carry, branded so that a hash cannot be passed where a key is expected. Their checks
 * are the wire's: what a frame may hold, not what this node's stores hold (keys are compared in lower
 * case, `Keys.normalizeKey`, but echoed as sent).
 */
import * as Schema from "effect/Schema"
import { isStorableText } from "./JsonbRefusal.ts"

/** An ed25519 public key: 64 hex characters, in either case. */
export const PublicKey = Schema.String.pipe(Schema.pattern(/^[0-9a-fA-F]{64}$/), Schema.brand("PublicKey"))
export type PublicKey = typeof PublicKey.Type

/** The network a session registered in. */
export const L2psUid = Schema.NonEmptyString.pipe(Schema.brand("L2psUid"))
export type L2psUid = typeof L2psUid.Type

/** The sender's name of a message, unique per network and sender: 1..256 characters, stored as text. */
export const MessageHash = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(256),
  Schema.filter(isStorableText, { description: "text without NUL or unpaired surrogates" }),
  Schema.brand("MessageHash")
)
export type MessageHash = typeof MessageHash.Type

/** A legacy server's client id (`register.payload.clientId`). */
export const ClientId = Schema.NonEmptyString.pipe(Schema.brand("ClientId"))
export type ClientId = typeof ClientId.Type
