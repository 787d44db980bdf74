import * as Data from "effect/Data"

/**
 * Why a secure-session operation was refused. Every refusal leaves the caller's states as they were:
 * decryption works on a copy and only a success returns new states.
 */
export type SecureErrorReason =
  /** bytes that are not a message of a known version, or a field out of its range */
  | "Malformed"
  /** a prekey whose account signature does not verify */
  | "BadSignature"
  /** a first message naming a prekey this device no longer (or never) had */
  | "UnknownPrekey"
  /** no session with that device, and the message is not a first message */
  | "NoSession"
  /** a message already opened (or one whose key expired or was dropped) */
  | "Replay"
  /** a counter ahead of the last one by more than the skip bound */
  | "CounterJump"
  /** authentication failed: a tampered header or ciphertext, the wrong session, or keys the attacker lacks */
  | "DecryptFailed"
  /** a message for another device, or from another device than the one named */
  | "WrongDevice"

export class SecureError extends Data.TaggedError("SecureError")<{
  readonly reason: SecureErrorReason
  readonly message: string
}> {
  static malformed(message: string): SecureError {
    return new SecureError({ reason: "Malformed", message: `malformed secure message: ${message}` })
  }
}

export const fail = (reason: SecureErrorReason, message: string): never => {
  throw new SecureError({ reason, message })
}
