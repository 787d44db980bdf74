import type * as Effect from "effect/Effect"
import type { RequestError } from "../domain/ErrorCode.ts"
import type { RequestId } from "../domain/Frames.ts"
import type { StorageError } from "../storage/Storage.ts"
import type { NetworkLimits } from "../node/NodeConfig.ts"
import type { Peer } from "./Sessions.ts"

export interface Registration {
  /** Lower case; the spelling of the frame is kept in `keyAsSent`. */
  readonly key: string
  readonly keyAsSent: string
  readonly keyBytes: Uint8Array
  readonly l2psUid: string
  readonly limits: NetworkLimits
  readonly ackCapable: boolean
  readonly peer: Peer
}

/** A frame bound for the socket; `messageId` marks a message whose delivery is tracked in storage. */
export interface Outgoing {
  readonly text: string
  readonly messageId?: string | undefined
}

/** What frame handlers see of their session. */
export interface SessionState {
  readonly id: number
  readonly remoteAddress: string
  registration: Registration | undefined
  /** Queues a frame for this socket, waiting for room. */
  readonly send: (out: Outgoing) => Effect.Effect<void>
  readonly reply: (type: string, payload: unknown, requestId: RequestId | undefined) => Effect.Effect<void>
  /** Resolves true once everything queued so far is written to the socket, false if it closed first. */
  readonly written: Effect.Effect<boolean>
  /**
   * Runs `completion` after the completions queued before it, off the frame-reading fiber, so a send
   * can wait for its commit while the next frames are read. Waits when too many are outstanding.
   * Its failures answer `requestId` like a handler's.
   */
  readonly later: (completion: Effect.Effect<void, RequestError | StorageError>, requestId: RequestId | undefined) => Effect.Effect<void>
  /** The session as registered peers see it (delivery, flush requests, close). */
  readonly asPeer: (registration: Omit<Registration, "peer">) => Peer
}
