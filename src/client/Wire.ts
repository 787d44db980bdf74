/**
 * The L2PS messaging protocol as a client sees it (PROTOCOL-REFERENCE.md §2, §3.2; DECISIONS.md):
 * payload types of the SDK's `l2ps_types.ts` plus this node's extensions, and the decoder of
 * server frames.
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { ErrorCode } from "../domain/ErrorCode.ts"

export type { ErrorCode }

/** What the server relays and stores without reading it: `{ciphertext, nonce, ephemeralKey?}`. */
export interface SerializedEncryptedMessage {
  /** base64 */
  readonly ciphertext: string
  /** base64 AES-GCM nonce */
  readonly nonce: string
  /** hex, opaque to the server */
  readonly ephemeralKey?: string
}

export interface RegisteredPayload {
  readonly success: boolean
  readonly publicKey: string
  readonly l2psUid: string
  readonly onlinePeers: ReadonlyArray<string>
}

export interface IncomingMessagePayload {
  readonly from: string
  readonly encrypted: SerializedEncryptedMessage
  readonly messageHash: string
  readonly offline?: boolean
}

export interface MessageSentPayload {
  readonly messageHash: string
  readonly l2psStatus: "submitted" | "failed"
}

export interface MessageQueuedPayload {
  readonly messageHash: string
  readonly status: "queued"
}

export type SendResult = MessageSentPayload | MessageQueuedPayload

export type MessageStatus =
  | "delivered"
  | "queued"
  | "sent"
  | "failed"
  | "l2ps_pending"
  | "l2ps_batched"
  | "l2ps_confirmed"

export interface StoredMessage {
  readonly id: string
  readonly from: string
  readonly to: string
  readonly messageHash: string
  readonly encrypted: SerializedEncryptedMessage
  readonly l2psUid: string
  readonly l2psTxHash: string | null
  readonly timestamp: number
  readonly status: MessageStatus
  /** this node only (DECISIONS.md 12) */
  readonly deliveryStatus?: "queued" | "delivered" | "sent" | "failed"
  /** this node only (DECISIONS.md 12) */
  readonly l2psStatus?: "l2ps_pending" | "l2ps_batched" | "l2ps_confirmed"
}

export interface HistoryPayload {
  readonly messages: ReadonlyArray<StoredMessage>
  readonly hasMore: boolean
}

export interface ErrorPayload {
  readonly code: ErrorCode | string
  readonly message: string
  readonly details?: string
}

/** Extension (DECISIONS.md 9): the recipient acknowledged `messageHash` at `at` (server ms). */
export interface ReceiptPayload {
  readonly messageHash: string
  readonly at: number
}

/** Extension (DECISIONS.md 9): the hashes the server marked delivered. */
export interface AckResponsePayload {
  readonly messageHashes: ReadonlyArray<string>
}

export interface PathStep {
  readonly hash: string
  readonly side: "left" | "right"
}

/** Extension (DECISIONS.md 13): `batch` is null until the message is batched. */
export interface ProofResponsePayload {
  readonly messageHash: string
  readonly leaf: string
  readonly l2psStatus?: string
  readonly batch: {
    readonly id: string
    readonly l2psUid: string
    readonly seq?: number
    readonly root: string
    readonly size: number
    readonly prevBatchHash: string | null
    readonly batchHash?: string
    readonly l2psTxHash: string | null
    readonly status: string
    readonly blockNumber?: number
    readonly blockHash?: string
    /** what `batchHash` covers besides the other fields (SECURITY.md 15) */
    readonly createdAt?: number
    /** hex ML-DSA-65 signature of the 32 bytes of `batchHash` */
    readonly signature?: string
    /** hex ML-DSA-65 public key of the node answering */
    readonly signer?: string
  } | null
  readonly path: ReadonlyArray<PathStep>
}

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

const ServerEnvelope = Schema.Struct({
  type: Schema.String,
  payload: Schema.optional(Schema.Unknown),
  requestId: Schema.optional(Schema.Unknown)
})

const decodeEnvelope = Schema.decodeUnknownEither(Schema.parseJson(ServerEnvelope))

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

/** `payload.message` of an error frame, as the SDK reads it. */
export const errorOf = (payload: unknown): ErrorPayload => {
  if (!Predicate.isRecord(payload)) return { code: "INTERNAL_ERROR", message: "Server error" }
  const code = typeof payload.code === "string" ? payload.code : "INTERNAL_ERROR"
  const message = typeof payload.message === "string" && payload.message.length > 0 ? payload.message : "Server error"
  return typeof payload.details === "string" ? { code, message, details: payload.details } : { code, message }
}
