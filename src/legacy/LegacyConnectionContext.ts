import type * as Effect from "effect/Effect"
import type { LegacyPayloadEncoded, LegacyServerFrameType } from "../domain/LegacyServerFrames.ts"
import type { LegacyPeer } from "./LegacyPeers.ts"

export interface LegacyRegistration {
  readonly clientId: string
  readonly publicKey: ReadonlyArray<number>
  /** The signing key's SHA-256 (hex): message rates and quotas are per key, across its clientIds. */
  readonly signer: string
  readonly peer: LegacyPeer
}

/** What legacy frame handlers see of their session. */
export interface LegacyConnectionContext {
  readonly id: number
  readonly remoteAddress: string
  readonly registration: LegacyRegistration | undefined
  /** Queues this request's reply for the socket, waiting for room. */
  readonly reply: <T extends LegacyServerFrameType>(type: T, payload: LegacyPayloadEncoded<T>) => Effect.Effect<void>
  /** Registers the session as `clientId` (not yet visible to others: see `LegacyPeers.claim`). */
  readonly register: (clientId: string, publicKey: ReadonlyArray<number>, signer: string) => LegacyRegistration
  readonly unregister: () => void
  /** Tells the server the socket has registered (it is no longer held to the registration deadline). */
  readonly registered: () => void
  /** The nonce of this connection's last `challenge`, forgotten when read: each is good for one register. */
  readonly takeNonce: () => string | undefined
  readonly issueNonce: (nonce: string) => void
  /** Remembers a question sent in a reply, so that its `peer_response` is accepted. */
  readonly expect: (questionId: string) => void
  /** Completes the question's waiter; false when it is unknown or expired. */
  readonly answer: (questionId: string, response: unknown) => boolean
}
