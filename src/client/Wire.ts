/**
 * The L2PS messaging protocol as a client sees it (docs/PROTOCOL.md): the payload types, under the names
 * of the SDK's `l2ps_types.ts`, of the server frame Schemas (src/domain/ServerFrames.ts), and the
 * decoders of server frames through those Schemas.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { ErrorCode } from "../domain/ErrorCode.ts"
import * as Frames from "../domain/ServerFrames.ts"
import { decodeBinary, encodeBinary, hasBinaryForm } from "../domain/BinaryFrames.ts"

export type { ErrorCode }
export { isServerFrameType, type ServerFrameType } from "../domain/ServerFrames.ts"

export type { L2psUid, MessageHash, PublicKey } from "../domain/Ids.ts"

// The payload types apps name are the Schemas' encoded sides (plain strings): an app may build one
// (a proof to verify, a message to store); what the client decodes is the branded side, assignable to it.

/** What the server relays and stores without reading it: `{ciphertext, nonce, ephemeralKey?}`. */
export type SerializedEncryptedMessage = typeof Frames.SerializedEncryptedMessage.Encoded
export type NodeInfoPayload = typeof Frames.NodeInfoResponse.Encoded
export type RegisteredPayload = typeof Frames.Registered.Encoded
export type DiscoverPayload = typeof Frames.DiscoverResponse.Encoded
export type PublicKeyResponsePayload = typeof Frames.PublicKeyResponse.Encoded
export type IncomingMessagePayload = typeof Frames.IncomingMessage.Encoded
export type MessageSentPayload = typeof Frames.MessageSent.Encoded
export type MessageQueuedPayload = typeof Frames.MessageQueued.Encoded
export type SendResult = MessageSentPayload | MessageQueuedPayload
export type MessageStatus = typeof Frames.MessageStatus.Encoded
export type StoredMessage = typeof Frames.StoredMessage.Encoded
export type HistoryPayload = typeof Frames.HistoryResponse.Encoded
export type ErrorPayload = typeof Frames.ErrorPayload.Encoded
/** Extension (docs/PROTOCOL.md rule 10): the recipient acknowledged `messageHash` at `at` (server ms). */
export type ReceiptPayload = typeof Frames.MessageDelivered.Encoded
/** Extension (docs/PROTOCOL.md rule 10): the hashes the server marked delivered. */
export type AckResponsePayload = typeof Frames.AckResponse.Encoded
export type PathStep = typeof Frames.PathStep.Encoded
export type BatchHeader = typeof Frames.BatchHeader.Encoded
/** Extension (docs/PROTOCOL.md, inclusion proofs): `batch` is null until the message is batched. */
export type ProofResponsePayload = typeof Frames.ProofResponse.Encoded

export type ConnectionState = "connected" | "disconnected" | "reconnecting"

/** A frame the client writes: `{type, payload, timestamp, requestId}`. */
export interface OutgoingFrame {
  readonly type: string
  readonly payload: Record<string, unknown>
  readonly timestamp: number
  readonly requestId?: string
}

/** A frame the server writes; only `type` is required to be usable. */
export interface IncomingFrame {
  readonly type: string
  readonly payload: unknown
  readonly requestId: string | undefined
}

const decodeEnvelope = Schema.decodeUnknownEither(Schema.parseJson(Frames.ServerEnvelope))

/** A server frame, or none when it does not parse (the SDK ignores those silently). */
export const decodeServerFrame = (text: string): Option.Option<IncomingFrame> =>
  Either.match(decodeEnvelope(text), {
    onLeft: () => Option.none(),
    onRight: (e) =>
      Option.some({
        type: e.type,
        payload: e.payload,
        requestId: typeof e.requestId === "string" ? e.requestId : typeof e.requestId === "number" ? String(e.requestId) : undefined
      })
  })

/**
 * A server frame in the binary encoding (src/domain/BinaryFrames.ts), read into the JSON frame it stands
 * for; none when it is not one (ignored, as a JSON frame that does not parse).
 */
export const decodeBinaryServerFrame = (bytes: Uint8Array): Option.Option<IncomingFrame> => {
  const decoded = decodeBinary(bytes)
  if (decoded._tag === "Bad") return Option.none()
  const { type, payload, requestId } = decoded.frame
  return Option.some({ type, payload, requestId: requestId === undefined ? undefined : String(requestId) })
}

/** A received frame, text or binary. */
export const decodeAnyServerFrame = (frame: string | Uint8Array): Option.Option<IncomingFrame> =>
  typeof frame === "string" ? decodeServerFrame(frame) : decodeBinaryServerFrame(frame)

/**
 * What the client writes for `frame`: its binary form when `binary` (the node granted the capability)
 * and the frame has one that carries it exactly, else its JSON text.
 */
export const encodeClientFrame = (frame: OutgoingFrame, binary: boolean): string | Uint8Array =>
  (binary && hasBinaryForm(frame.type) ? encodeBinary(frame) : undefined) ?? JSON.stringify(frame)

/** A server frame whose payload is not what its type's Schema says. */
export class MalformedFrame extends Data.TaggedError("MalformedFrame")<{
  readonly type: string
  readonly message: string
}> {}

/** A payload as decoded: its ids branded (`PublicKey`, `MessageHash`, `L2psUid`). */
export type PayloadOf<T extends Frames.ServerFrameType> = (typeof Frames.ServerPayloads)[T]["Type"]

const decoderOf = (schema: Schema.Schema.AnyNoContext): (u: unknown) => Either.Either<unknown, ParseResult.ParseError> =>
  Schema.decodeUnknownEither(schema)

const decoders = new Map<string, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>(
  Object.entries(Frames.ServerPayloads).map(([type, schema]) => [type, decoderOf(schema)])
)

/** The payload of a server frame of a known type, decoded by its Schema once, where the frame arrives. */
export const decodePayload = <T extends Frames.ServerFrameType>(
  type: T,
  payload: unknown
): Either.Either<PayloadOf<T>, MalformedFrame> =>
  Either.mapBoth(decoders.get(type)!(payload), {
    onLeft: (e) => new MalformedFrame({ type, message: `Malformed ${type}: ${e.message}` }),
    // The decoder of `type` is `ServerPayloads[type]`'s: its output is that Schema's type.
    onRight: (a) => a as PayloadOf<T>
  })

/** `payload.message` of an error frame, as the SDK reads it. */
export const errorOf = (payload: unknown): ErrorPayload => {
  if (!Predicate.isRecord(payload)) return { code: "INTERNAL_ERROR", message: "Server error" }
  const code = typeof payload.code === "string" ? payload.code : "INTERNAL_ERROR"
  const message = typeof payload.message === "string" && payload.message.length > 0 ? payload.message : "Server error"
  return typeof payload.details === "string" ? { code, message, details: payload.details } : { code, message }
}
