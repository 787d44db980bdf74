/**
 * The frames the L2PS server writes (docs/PROTOCOL.md, "L2PS server"): one Schema per payload, and
 * `ServerFrame`, the union of whole frames. The client decodes through them; docs' examples are checked
 * with them.
 */
import * as Schema from "effect/Schema"
import { L2psUid, MessageHash, PublicKey } from "./Ids.ts"
import { BundleResponse, DeviceRemoved, DevicesResponse, PrekeyCounts } from "./Prekeys.ts"
import { InviteDeleted, InviteResponse, InviteStored } from "./Invites.ts"

/** What the server relays and stores without reading it. */
export const SerializedEncryptedMessage = Schema.Struct({
  /** base64 */
  ciphertext: Schema.String,
  /** base64 AES-GCM nonce */
  nonce: Schema.String,
  /** hex, opaque to the server */
  ephemeralKey: Schema.optionalWith(Schema.String, { exact: true })
})

export const NodeInfoResponse = Schema.Struct({
  /** hex SHA-256 of `nodeKey` */
  nodeId: Schema.String,
  /** hex ML-DSA-65 public key */
  nodeKey: Schema.String,
  proofVersions: Schema.Array(Schema.Number)
})

export const Registered = Schema.Struct({
  success: Schema.Boolean,
  publicKey: PublicKey,
  l2psUid: L2psUid,
  onlinePeers: Schema.Array(PublicKey),
  /** Extension: the capabilities granted, to a session that asked for `binary`, `quiet_acks` or `receipts`. */
  capabilities: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
})

export const DiscoverResponse = Schema.Struct({
  peers: Schema.Array(PublicKey),
  /** present when more pages remain (extension) */
  nextCursor: Schema.optionalWith(Schema.String, { exact: true })
})

export const PublicKeyResponse = Schema.Struct({
  targetId: Schema.String,
  publicKey: Schema.NullOr(PublicKey)
})

export const MessageSent = Schema.Struct({
  messageHash: MessageHash,
  l2psStatus: Schema.Literal("submitted", "failed")
})

export const MessageQueued = Schema.Struct({
  messageHash: MessageHash,
  status: Schema.Literal("queued")
})

export const MessageStatus = Schema.Literal(
  "delivered",
  "queued",
  "sent",
  "failed",
  "l2ps_pending",
  "l2ps_batched",
  "l2ps_confirmed"
)

export const StoredMessage = Schema.Struct({
  id: Schema.String,
  from: PublicKey,
  to: PublicKey,
  messageHash: MessageHash,
  encrypted: SerializedEncryptedMessage,
  l2psUid: L2psUid,
  l2psTxHash: Schema.NullOr(Schema.String),
  timestamp: Schema.Number,
  status: MessageStatus,
  /** this node only (docs/PROTOCOL.md, message statuses) */
  deliveryStatus: Schema.optionalWith(Schema.Literal("queued", "delivered", "sent", "failed"), { exact: true }),
  /** this node only (docs/PROTOCOL.md, message statuses) */
  l2psStatus: Schema.optionalWith(Schema.Literal("l2ps_pending", "l2ps_batched", "l2ps_confirmed"), { exact: true })
})

export const HistoryResponse = Schema.Struct({
  messages: Schema.Array(StoredMessage),
  hasMore: Schema.Boolean
})

/** A receipt of an `ack` not forwarded, and why (the ack of its message still counts). */
export const RefusedReceipt = Schema.Struct({ messageHash: Schema.String, message: Schema.String })

export const AckResponse = Schema.Struct({
  messageHashes: Schema.Array(MessageHash),
  /** Only when some were refused (capability "receipts"). */
  refusedReceipts: Schema.optionalWith(Schema.Array(RefusedReceipt), { exact: true })
})

export const PathStep = Schema.Struct({ hash: Schema.String, side: Schema.Literal("left", "right") })

/**
 * A batch as `proof_response` carries it (docs/PROTOCOL.md, "Inclusion proofs"): the signed header
 * (`l2psUid`, `seq`, `root`, `size`, `prevBatchHash`, `createdAt`, hashed to `batchHash`) and where it
 * stands on L1. The signature fields are optional: a node without a key sends none.
 */
export const BatchHeader = Schema.Struct({
  id: Schema.String,
  l2psUid: L2psUid,
  seq: Schema.optionalWith(Schema.Number, { exact: true }),
  root: Schema.String,
  size: Schema.Number,
  prevBatchHash: Schema.NullOr(Schema.String),
  batchHash: Schema.optionalWith(Schema.String, { exact: true }),
  l2psTxHash: Schema.NullOr(Schema.String),
  status: Schema.String,
  blockNumber: Schema.optionalWith(Schema.Number, { exact: true }),
  blockHash: Schema.optionalWith(Schema.String, { exact: true }),
  /** what `batchHash` covers besides the other fields (SECURITY.md 15) */
  createdAt: Schema.optionalWith(Schema.Number, { exact: true }),
  /** hex ML-DSA-65 signature of the 32 bytes of `batchHash` */
  signature: Schema.optionalWith(Schema.String, { exact: true }),
  /** hex ML-DSA-65 public key of the node answering */
  signer: Schema.optionalWith(Schema.String, { exact: true })
})

/** Extension (docs/PROTOCOL.md, inclusion proofs): `batch` is null until the message is batched. */
export const ProofResponse = Schema.Struct({
  messageHash: MessageHash,
  leaf: Schema.String,
  l2psStatus: Schema.optionalWith(Schema.String, { exact: true }),
  batch: Schema.NullOr(BatchHeader),
  path: Schema.Array(PathStep)
})

export const ErrorPayload = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  details: Schema.optionalWith(Schema.String, { exact: true })
})

export const IncomingMessage = Schema.Struct({
  from: PublicKey,
  /** Only on a copy (capability "copies"): `from` is the session's own key, and this the recipient. */
  to: Schema.optionalWith(PublicKey, { exact: true }),
  encrypted: SerializedEncryptedMessage,
  messageHash: MessageHash,
  /** true when delivered from the queue */
  offline: Schema.optionalWith(Schema.Boolean, { exact: true })
})

/** Extension (docs/PROTOCOL.md rule 10): the recipient acknowledged `messageHash` at `at` (server ms). */
export const MessageDelivered = Schema.Struct({
  messageHash: MessageHash,
  at: Schema.Number,
  /**
   * Capability "receipts": the recipient device's sealed receipt (base64), opaque to the node. A frame
   * with a receipt may come for a message already confirmed (another device of the recipient).
   */
  receipt: Schema.optionalWith(Schema.String, { exact: true })
})

export const PeerPresence = Schema.Struct({ publicKey: PublicKey })

/** The payload of every server frame type. */
export const ServerPayloads = {
  node_info_response: NodeInfoResponse,
  registered: Registered,
  discover_response: DiscoverResponse,
  public_key_response: PublicKeyResponse,
  message_sent: MessageSent,
  message_queued: MessageQueued,
  history_response: HistoryResponse,
  ack_response: AckResponse,
  proof_response: ProofResponse,
  error: ErrorPayload,
  message: IncomingMessage,
  message_delivered: MessageDelivered,
  peer_joined: PeerPresence,
  peer_left: PeerPresence,
  prekeys_published: PrekeyCounts,
  prekeys_count_response: PrekeyCounts,
  bundle_response: BundleResponse,
  devices_response: DevicesResponse,
  device_removed: DeviceRemoved,
  invite_stored: InviteStored,
  invite_response: InviteResponse,
  invite_deleted: InviteDeleted
} as const

export type ServerFrameType = keyof typeof ServerPayloads

export const isServerFrameType = (type: string): type is ServerFrameType => Object.hasOwn(ServerPayloads, type)

const RequestId = Schema.Union(Schema.String, Schema.Number)

const frameOf = <T extends ServerFrameType>(type: T) =>
  Schema.Struct({
    type: Schema.Literal(type),
    payload: ServerPayloads[type] as (typeof ServerPayloads)[T],
    timestamp: Schema.Number,
    requestId: Schema.optionalWith(RequestId, { exact: true })
  })

/** A whole server frame: `{type, payload, timestamp, requestId?}` (`requestId` on direct replies). */
export const ServerFrame = Schema.Union(
  ...(Object.keys(ServerPayloads) as Array<ServerFrameType>).map(frameOf)
)
export type ServerFrame = typeof ServerFrame.Type

/**
 * Any server frame's envelope, its payload not read yet: what a client decodes first, so that a reply
 * whose payload is malformed still fails the request it answers.
 */
export const ServerEnvelope = Schema.Struct({
  type: Schema.String,
  payload: Schema.optionalWith(Schema.Unknown, { exact: true }),
  requestId: Schema.optionalWith(Schema.Unknown, { exact: true })
})

/** A payload as the Schema of its frame type decodes it (ids branded) and as it is written. */
export type PayloadType<T extends ServerFrameType> = (typeof ServerPayloads)[T]["Type"]
export type PayloadEncoded<T extends ServerFrameType> = (typeof ServerPayloads)[T]["Encoded"]

const encoderOf = (schema: Schema.Schema.AnyNoContext): (a: unknown) => unknown => Schema.encodeSync(schema)
const encoders = new Map(Object.entries(ServerPayloads).map(([type, schema]) => [type, encoderOf(schema)]))

/**
 * The payload of a server frame built through its Schema: one the Schema refuses is a defect of the
 * node, caught where it is built. For cold paths with small payloads: a check costs about 0.7 µs per key
 * (0.7 ms for a `registered` with 1,000 peers), so `registered`, `discover_response` and the send path
 * are typed by `PayloadEncoded` only, and checked by the tests (test/docs/Protocol.test.ts).
 */
export const encodePayload = <T extends ServerFrameType>(type: T, payload: PayloadType<T>): PayloadEncoded<T> =>
  // The encoder of `type` is `ServerPayloads[type]`'s: its output is that Schema's encoded type.
  encoders.get(type)!(payload) as PayloadEncoded<T>
