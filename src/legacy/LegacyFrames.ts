import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { ClientId } from "../domain/Ids.ts"
import { MAX_JSON_DEPTH, nestedDeeperThan } from "../domain/Frames.ts"
import { encodeLegacyFrame } from "../domain/LegacyServerFrames.ts"

/** Error types of the legacy signaling protocol (`ImErrorType` of the reference), plus RATE_LIMITED, SESSION_REPLACED and KEY_BANNED. */
export const LegacyErrorType = Schema.Literal(
  "INVALID_MESSAGE",
  "CLIENT_ID_TAKEN",
  "PEER_NOT_FOUND",
  "INVALID_PUBLIC_KEY",
  "REGISTRATION_REQUIRED",
  "INTERNAL_ERROR",
  "INVALID_PROOF",
  "RATE_LIMITED",
  "SESSION_REPLACED",
  "KEY_BANNED"
)
export type LegacyErrorType = typeof LegacyErrorType.Type

/** A request refused with one error frame; the session goes on. */
export class LegacyError extends Schema.TaggedError<LegacyError>()("LegacyError", {
  errorType: LegacyErrorType,
  details: Schema.String
}) {}

export const refuse = (errorType: LegacyErrorType, details: string) => new LegacyError({ errorType, details })

/** Every client frame: `{type, payload}`; nothing else is read from the envelope. */
export interface LegacyEnvelope {
  readonly type: string
  readonly payload: Readonly<Record<string, unknown>>
}

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())

/** Reads one text frame: the envelope, or the error to answer with. */
export const decodeFrame = (text: string): Either.Either<LegacyEnvelope, LegacyError> => {
  const json = decodeJson(text)
  if (Either.isLeft(json)) return Either.left(refuse("INVALID_MESSAGE", "Invalid JSON"))
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    return Either.left(refuse("INVALID_MESSAGE", `JSON nested too deeply (max ${MAX_JSON_DEPTH} levels)`))
  }
  const u = json.right
  if (!Predicate.isRecord(u) || typeof u.type !== "string" || u.type.length === 0 || !Predicate.isRecord(u.payload)) {
    return Either.left(refuse("INVALID_MESSAGE", "Invalid message format"))
  }
  return Either.right({ type: u.type, payload: u.payload })
}

/** Serialises a server frame: `{type, payload}`, its payload typed by its Schema (`LegacyServerFrames`). */
export const encodeFrame = encodeLegacyFrame

export const encodeError = (error: LegacyError, now: number): string =>
  encodeFrame("error", { errorType: error.errorType, details: error.details, timestamp: new Date(now).toISOString() })

const MAX_CLIENT_ID = 256
const MAX_B64 = 16_384

const Base64 = Schema.String.pipe(Schema.maxLength(MAX_B64))

/** `register`: the ML-KEM key as a byte array and an ML-DSA proof (SerializedSignedObject). */
export const RegisterPayload = Schema.Struct({
  clientId: ClientId.pipe(Schema.maxLength(MAX_CLIENT_ID)),
  publicKey: Schema.Unknown,
  verification: Schema.Struct({
    algorithm: Schema.String,
    serializedSignedData: Base64,
    serializedPublicKey: Base64,
    serializedMessage: Base64
  }),
  /** Extension: the server's `challenge` nonce and an ML-DSA signature by the same key (see `Challenge.ts`). */
  challenge: Schema.optional(Schema.Struct({ nonce: Base64, signature: Base64 }))
})

export const TargetPayload = Schema.Struct({ targetId: Schema.NonEmptyString.pipe(Schema.maxLength(MAX_CLIENT_ID)) })

export const MessagePayload = Schema.Struct({
  targetId: Schema.NonEmptyString.pipe(Schema.maxLength(MAX_CLIENT_ID)),
  message: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

export const PeerResponsePayload = Schema.Struct({
  questionId: Schema.NonEmptyString.pipe(Schema.maxLength(64)),
  response: Schema.optional(Schema.Unknown)
})

/** Decodes a payload, refusing with `INVALID_MESSAGE details` when its shape is wrong. */
export const payloadOf = <A, I>(schema: Schema.Schema<A, I>, details: string) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (payload: unknown): Either.Either<A, LegacyError> =>
    Either.mapLeft(decode(payload), () => refuse("INVALID_MESSAGE", details))
}

/** ML-KEM public key sizes (512, 768, 1024); the SDK sends ML-KEM-768 (1184 bytes). */
const ML_KEM_KEY_BYTES = new Set([800, 1184, 1568])

/** The `publicKey` array as bytes, or undefined when it is not an ML-KEM key of byte values. */
export const publicKeyBytes = (u: unknown): Uint8Array | undefined => {
  if (!Array.isArray(u) || !ML_KEM_KEY_BYTES.has(u.length)) return undefined
  const bytes = new Uint8Array(u.length)
  for (let i = 0; i < u.length; i++) {
    const b = u[i]
    if (typeof b !== "number" || !Number.isInteger(b) || b < 0 || b > 255) return undefined
    bytes[i] = b
  }
  return bytes
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Standard padded base64 (what the SDK's `btoa` gives), or undefined. */
export const base64Bytes = (s: string): Uint8Array | undefined =>
  BASE64.test(s) ? new Uint8Array(Buffer.from(s, "base64")) : undefined
