import * as Schema from "effect/Schema"

/** Error codes of the L2PS messaging protocol. */
export const ErrorCode = Schema.Literal(
  "INVALID_MESSAGE",
  "REGISTRATION_REQUIRED",
  "INVALID_PROOF",
  "L2PS_NOT_FOUND",
  "L2PS_SUBMIT_FAILED",
  "PEER_NOT_FOUND",
  "RATE_LIMITED",
  "INTERNAL_ERROR",
  "KEY_BANNED",
  /** A prekey or invite record whose signature by the account key does not verify (docs/PROTOCOL.md, "Prekeys", "Invites"). */
  "INVALID_SIGNATURE",
  /** A device's one-time prekey pool, or an account's devices, would pass their bound. */
  "PREKEY_LIMIT",
  /** No such device of this account on this node. */
  "DEVICE_NOT_FOUND",
  /** The account has the most invite records allowed, or the id is taken. */
  "INVITE_LIMIT",
  /** No such invite record: never stored, expired, deleted, or a one-time record already fetched. */
  "INVITE_NOT_FOUND"
)
export type ErrorCode = typeof ErrorCode.Type

/** A request refused with an error frame; the session goes on. */
export class RequestError extends Schema.TaggedError<RequestError>()("RequestError", {
  code: ErrorCode,
  message: Schema.String
}) {}

export const invalid = (message: string) => new RequestError({ code: "INVALID_MESSAGE", message })
export const refuse = (code: ErrorCode, message: string) => new RequestError({ code, message })
