/**
 * The frames the legacy server writes (docs/PROTOCOL.md, "Legacy server"): one Schema per payload. The
 * server's handlers build their payloads as these Schemas' encoded types; the client library decodes
 * through them. Frames are `{type, payload}`, with no timestamp but inside an `error`'s payload and a
 * queued `message`'s.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

/** An ML-KEM public key as the 2.9.1 client sends and reads it: its bytes as an array of numbers. */
export const KeyBytes = Schema.Array(Schema.Number.pipe(Schema.int(), Schema.between(0, 255)))

export const Register = Schema.Struct({ success: Schema.Literal(true), clientId: Schema.String })

export const Challenge = Schema.Struct({
  /** base64 of 32 random bytes, good for this connection's next `register` */
  nonce: Schema.String,
  /** the node's ML-DSA-65 public key, hex */
  node: Schema.String
})

export const Discover = Schema.Struct({ peers: Schema.Array(Schema.String) })

export const PublicKeyResponse = Schema.Struct({
  /** the id as asked: the 2.9.1 client matches the reply on it */
  peerId: Schema.String,
  publicKey: KeyBytes
})

export const Message = Schema.Struct({
  /** as the sender sent it (the SDK's encrypted message); the node does not read it */
  message: Schema.Unknown,
  fromId: Schema.String,
  /** ms, when delivered from the offline store */
  timestamp: Schema.optionalWith(Schema.Number, { exact: true })
})

export const MessageQueued = Schema.Struct({
  targetId: Schema.String,
  status: Schema.Literal("offline"),
  message: Schema.String
})

export const PeerDisconnected = Schema.Struct({ peerId: Schema.String })

export const ServerQuestion = Schema.Struct({
  /** a UUID */
  questionId: Schema.String,
  question: Schema.Unknown
})

export const LegacyErrorPayload = Schema.Struct({
  errorType: Schema.String,
  details: Schema.String,
  /** ISO 8601 */
  timestamp: Schema.String
})

/** The payload of every legacy server frame type. */
export const LegacyServerPayloads = {
  register: Register,
  challenge: Challenge,
  discover: Discover,
  public_key_response: PublicKeyResponse,
  message: Message,
  message_queued: MessageQueued,
  peer_disconnected: PeerDisconnected,
  server_question: ServerQuestion,
  error: LegacyErrorPayload
} as const

export type LegacyServerFrameType = keyof typeof LegacyServerPayloads

export const isLegacyServerFrameType = (type: string): type is LegacyServerFrameType =>
  Object.hasOwn(LegacyServerPayloads, type)

/** A payload as written (what the server builds) and as decoded (what the client reads). */
export type LegacyPayloadEncoded<T extends LegacyServerFrameType> = (typeof LegacyServerPayloads)[T]["Encoded"]
export type LegacyPayloadType<T extends LegacyServerFrameType> = (typeof LegacyServerPayloads)[T]["Type"]

/**
 * Serialises a server frame, its payload typed by its Schema (not checked at run time: `message` is on
 * the delivery path, and the tests decode what the node sends).
 */
export const encodeLegacyFrame = <T extends LegacyServerFrameType>(type: T, payload: LegacyPayloadEncoded<T>): string =>
  JSON.stringify({ type, payload })

const decoders = new Map(
  Object.entries(LegacyServerPayloads).map(([type, schema]) => [
    type,
    Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>, { onExcessProperty: "ignore" })
  ])
)

/** A legacy server frame's payload through its Schema, or why it is malformed. */
export const decodeLegacyPayload = <T extends LegacyServerFrameType>(
  type: T,
  payload: unknown
): Either.Either<LegacyPayloadType<T>, string> =>
  Either.mapBoth(decoders.get(type)!(payload), {
    onLeft: (e) => `Malformed ${type}: ${e.message}`,
    // The decoder of `type` is `LegacyServerPayloads[type]`'s: its output is that Schema's type.
    onRight: (a) => a as LegacyPayloadType<T>
  })
