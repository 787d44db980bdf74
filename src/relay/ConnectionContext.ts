import type * as Effect from "effect/Effect"
import type { RequestError } from "../domain/ErrorCode.ts"
import type { RequestId } from "../domain/Frames.ts"
import type { NetworkLimits } from "../config/NodeConfig.ts"
import type { Outgoing } from "../connection/Outbox.ts"
import type { Peer } from "./Peers.ts"

export interface Registration {
  /** Lower case; the spelling of the frame is kept in `keyAsSent`. */
  readonly key: string
  readonly keyAsSent: string
  readonly keyBytes: Uint8Array
  readonly l2psUid: string
  readonly limits: NetworkLimits
  readonly ackCapable: boolean
  /** Asked at registration (capability "copies"): it is shown live what its key's other sessions send. */
  readonly copies: boolean
  /** Asked at registration (capability "receipts"): its acks may carry sealed receipts, its `message_delivered` frames do. */
  readonly receipts: boolean
  /** Asked at registration (capability "binary"): the hot frames are written to it in binary. */
  readonly binaryFrames: boolean
  /** Asked at registration (capability "quiet_acks"): its `ack`s get no `ack_response`, only errors. */
  readonly quietAcks: boolean
  readonly peer: Peer
}


/** What frame handlers see of their session. */
export interface ConnectionContext {
  readonly id: number
  readonly remoteAddress: string
  registration: Registration | undefined
  /** Tells the server the socket has registered (it is no longer held to the registration deadline). */
  readonly registered: () => void
  /** Queues a frame for this socket, waiting for room. */
  readonly send: (out: Outgoing) => Effect.Effect<void>
  readonly reply: (type: string, payload: unknown, requestId: RequestId | undefined) => Effect.Effect<void>
  /** Resolves true once everything queued so far is written to the socket, false if it closed first. */
  readonly written: Effect.Effect<boolean>
  /** Counts a send that is committing; waits while too many are (the pipeline of one session). */
  readonly beginSend: Effect.Effect<void>
  /** `beginSend` from plain code: false, and nothing counted, when the pipeline is full. */
  readonly unsafeBeginSend: () => boolean
  readonly endSend: () => void
  /**
   * `reply` from plain code (a send's completion). Not bounded by the outbox's capacity: a session has
   * at most its pipeline of sends to answer. Dropped once the session is closing.
   */
  readonly unsafeReply: (type: string, payload: unknown, requestId: RequestId | undefined, now: number) => void
  /** An error frame, from plain code (see `unsafeReply`). */
  readonly unsafeFail: (error: RequestError, requestId: RequestId | undefined, now: number) => void
  /** A send refused for the sender's own doing: its error frame, charged to the connection's frame budget. */
  readonly unsafeRefuseSend: (error: RequestError, requestId: RequestId | undefined, now: number) => void
  /** Notes a message handed to this session (see `Peer.handed`). */
  readonly handed: (messageHash: string) => void
  /** Whether this session was handed the message, so its `ack` of it counts. */
  readonly wasHanded: (messageHash: string) => boolean
  /** The session as registered peers see it (delivery, flush requests, close). */
  readonly asPeer: (registration: Omit<Registration, "peer">) => Peer
}
