import * as Either from "effect/Either"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { invalid, type RequestError } from "./ErrorCode.ts"
import { MessageHash, PublicKey } from "./Ids.ts"
import { isStorableText } from "./JsonbRefusal.ts"

/** A request id is opaque: echoed exactly as received (its size is bounded by the frame's). */
export type RequestId = string | number

/** Every client frame: `{type, payload, timestamp, requestId?}` (checked by `decodeFrame`). */
export interface Envelope {
  readonly type: string
  readonly payload: Record<string, unknown>
  readonly timestamp?: unknown
  readonly requestId?: RequestId
}

const NOT_JSON = Symbol("not JSON")
const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return NOT_JSON
  }
}

/** `Envelope`'s check as plain code: every frame goes through it. */
const envelopeOf = (u: unknown): Envelope | undefined => {
  if (!Predicate.isRecord(u)) return undefined
  const { type, payload, requestId } = u
  if (typeof type !== "string" || type.length === 0 || !Predicate.isRecord(payload)) return undefined
  if (requestId !== undefined && typeof requestId !== "string" && typeof requestId !== "number") return undefined
  return u as unknown as Envelope
}

/** Outcome of reading one text frame: the envelope, or the error to send (with any request id found). */
export type Decoded =
  | { readonly _tag: "Frame"; readonly frame: Envelope }
  | { readonly _tag: "Bad"; readonly error: RequestError; readonly requestId: RequestId | undefined }

const requestIdOf = (u: unknown): RequestId | undefined => {
  if (!Predicate.isRecord(u)) return undefined
  const id = u.requestId
  return typeof id === "string" || typeof id === "number" ? id : undefined
}

/** Deepest nesting of arrays and objects a frame may have: protocol frames nest 4 levels at most. */
export const MAX_JSON_DEPTH = 64

/**
 * Whether a JSON text nests arrays and objects deeper than `max`: a linear scan without recursion, so
 * deep input costs nothing downstream (storage, canonical JSON and serialisers all recurse).
 */
export const nestedDeeperThan = (text: string, max: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

export const decodeFrame = (text: string): Decoded => {
  const json = parseJson(text)
  if (json === NOT_JSON) return { _tag: "Bad", error: invalid("Invalid JSON"), requestId: undefined }
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    return { _tag: "Bad", error: invalid(`JSON nested too deeply (max ${MAX_JSON_DEPTH} levels)`), requestId: requestIdOf(json) }
  }
  const frame = envelopeOf(json)
  if (frame === undefined) {
    return { _tag: "Bad", error: invalid("Missing or invalid type/payload"), requestId: requestIdOf(json) }
  }
  return { _tag: "Frame", frame }
}

/** A proof timestamp: the frame's own `timestamp`, an integer of ms. */
export const proofTimestamp = (u: unknown): number | undefined =>
  typeof u === "number" && Number.isSafeInteger(u) && u >= 0 ? u : undefined

const Hex64 = Schema.String.pipe(Schema.pattern(/^[0-9a-fA-F]{64}$/))

export const RegisterPayload = Schema.Struct({
  publicKey: Schema.NonEmptyString,
  l2psUid: Schema.NonEmptyString,
  proof: Schema.NonEmptyString,
  capabilities: Schema.optional(Schema.Array(Schema.String).pipe(Schema.maxItems(16))),
  /** 2: the proof signs the bound string of SECURITY.md 6; absent: the reference's string. */
  proofVersion: Schema.optional(Schema.Unknown)
})

export const EncryptedPayload = Schema.Struct(
  {
    ciphertext: Schema.NonEmptyString,
    nonce: Schema.NonEmptyString,
    ephemeralKey: Schema.optional(Schema.String)
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

export const HistoryPayload = Schema.Struct({
  peerKey: Schema.NonEmptyString,
  proof: Schema.NonEmptyString,
  before: Schema.optional(Schema.Unknown),
  limit: Schema.optional(Schema.Unknown),
  proofVersion: Schema.optional(Schema.Unknown)
})

export const PublicKeyPayload = Schema.Struct({ targetId: Schema.NonEmptyString })

export const AckPayload = Schema.Struct({
  messageHashes: Schema.Array(Schema.NonEmptyString.pipe(Schema.maxLength(256))).pipe(
    Schema.minItems(1),
    Schema.maxItems(500)
  ),
  /**
   * Capability "receipts": a sealed receipt per acknowledged message, by its hash, for its sender's
   * `message_delivered`. Each member is checked on its own (`receiptError`): one refused costs only itself.
   */
  receipts: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/** The most characters of one sealed receipt (base64): the messenger's, sealed for one device, has 152. */
export const MAX_RECEIPT_CHARS = 512

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** Why a receipt riding on an `ack` is refused, or undefined when it is forwarded. */
export const receiptError = (receipt: unknown): string | undefined =>
  typeof receipt !== "string" || receipt.length === 0 || !BASE64.test(receipt)
    ? "a receipt must be a non-empty base64 string"
    : receipt.length > MAX_RECEIPT_CHARS
    ? `a receipt must be at most ${MAX_RECEIPT_CHARS} characters (this one has ${receipt.length})`
    : undefined

export const MAX_MESSAGE_HASH = 256
/** The most characters of `nonce` and of `ephemeralKey` in a send. */
export const MAX_ENCRYPTED_FIELD = 4096

/**
 * The `encrypted` object as written in the frame, at most: its three members at their limits, with room
 * for names, quotes and a little whitespace. Repeated members (`JSON.parse` keeps the last) count too.
 */
export const maxEncryptedChars = (maxCiphertextChars: number): number => maxCiphertextChars + 2 * MAX_ENCRYPTED_FIELD + 1024

/** Text Postgres stores as it is (no NUL, no half surrogate pair): the members of a stored `encrypted`. */
const StorableString = Schema.String.pipe(Schema.filter(isStorableText, { description: "text without NUL or unpaired surrogates" }))

/**
 * A send's `encrypted`: exactly what the real clients write (PROTOCOL-REFERENCE.md §3.2.6), each member
 * storable, and the whole within `maxEncryptedChars` as `JSON.stringify` writes it (the node measures the
 * text as the sender wrote it: the same for a compactly written frame).
 */
export const sendEncrypted = (maxCiphertextChars: number) =>
  Schema.Struct({
    ciphertext: StorableString.pipe(Schema.minLength(1), Schema.maxLength(maxCiphertextChars)),
    nonce: StorableString.pipe(Schema.minLength(1), Schema.maxLength(MAX_ENCRYPTED_FIELD)),
    ephemeralKey: Schema.optionalWith(StorableString.pipe(Schema.maxLength(MAX_ENCRYPTED_FIELD)), { exact: true })
  }).pipe(
    Schema.filter((e) => JSON.stringify(e).length <= maxEncryptedChars(maxCiphertextChars), {
      description: `an encrypted object of at most ${maxEncryptedChars(maxCiphertextChars)} characters`
    })
  ).annotations({ parseOptions: { onExcessProperty: "error" } })

/**
 * The `send` payload on a node taking ciphertexts of `maxCiphertextChars`. Other payload members are
 * ignored. The hot path checks the same in plain code (`validate` in src/relay/handlers/Send.ts).
 */
export const sendPayload = (maxCiphertextChars: number) =>
  Schema.Struct({ to: PublicKey, encrypted: sendEncrypted(maxCiphertextChars), messageHash: MessageHash })

/** `from` (extension) picks the sender when several sent the asker the same hash. */
export const ProofRequestPayload = Schema.Struct({ messageHash: Schema.NonEmptyString, from: Schema.optional(Hex64) })

export { Hex64 }

/** Decodes a payload, refusing with `message` when its shape is wrong. */
export const payloadOf = <A, I>(schema: Schema.Schema<A, I>, message: string) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (payload: unknown): Either.Either<A, RequestError> =>
    Either.mapLeft(decode(payload), () => invalid(message))
}

/** A payload already serialised (stored ciphertexts spliced in as text): framed as it is. */
export class JsonText {
  constructor(readonly text: string) {}
}

/** Serialises a server frame; `requestId` only on direct replies. */
export const encodeFrame = (
  type: string,
  payload: unknown,
  timestamp: number,
  requestId?: RequestId
): string =>
  payload instanceof JsonText
    ? `{"type":${JSON.stringify(type)},"payload":${payload.text},"timestamp":${timestamp}${
      requestId === undefined ? "" : `,"requestId":${JSON.stringify(requestId)}`
    }}`
    : requestId === undefined
    ? JSON.stringify({ type, payload, timestamp })
    : JSON.stringify({ type, payload, timestamp, requestId })
