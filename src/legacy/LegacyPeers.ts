import * as Context from "effect/Context"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** Why a question to a peer got no answer. */
export type QuestionFailure = "Disconnected" | "Busy"

/** A registered legacy session as other sessions and the node's own code see it. */
export interface LegacyPeer {
  readonly sessionId: number
  readonly clientId: string
  /** Its signing key's SHA-256 (hex). */
  readonly signer: string
  /** The ML-KEM public key as registered (the JSON byte array handed to senders). */
  readonly publicKey: ReadonlyArray<number>
  /** Whether a live message may be handed to it now (not catching up from storage, room in its mailbox). */
  readonly canAccept: () => boolean
  /** Non-blocking; false when its mailbox is full (it then catches up from storage). */
  readonly deliver: (text: string, messageId: string) => boolean
  /** Asks it to deliver what storage holds for it once it is idle. */
  readonly requestFlush: () => void
  /** Sends a frame at once, even while it waits for a reply (only `peer_disconnected`). */
  readonly notify: (text: string) => void
  /** Sends a `server_question` once it is idle; the deferred completes with its `peer_response`. */
  readonly ask: (questionId: string, question: unknown) => Deferred.Deferred<unknown, QuestionFailure> | undefined
  readonly forget: (questionId: string) => void
  readonly close: (code: number, reason: string) => void
  /** Writes `text` at once, ahead of anything queued, then closes: its id now belongs to another session. */
  readonly evict: (text: string, code: number, reason: string) => void
}

/** Live registered sessions by clientId, in registration order (the order of `discover`). */
export class LegacyPeers extends Context.Tag("im/LegacyPeers")<LegacyPeers, {
  /** Makes the peer hold its clientId, returning the other session that held it (to evict). */
  readonly takeOver: (peer: LegacyPeer) => Effect.Effect<LegacyPeer | undefined>
  /** Removes the peer if it holds its clientId; returns whether it did. */
  readonly release: (peer: LegacyPeer) => Effect.Effect<boolean>
  readonly get: (clientId: string) => Effect.Effect<LegacyPeer | undefined>
  readonly ids: Effect.Effect<ReadonlyArray<string>>
  /** Every registered session, in registration order. */
  readonly list: Effect.Effect<ReadonlyArray<LegacyPeer>>
  /** Sends a frame at once to every registered session. */
  readonly notifyAll: (text: string) => Effect.Effect<void>
  readonly count: Effect.Effect<number>
}>() {}

export const layer: Layer.Layer<LegacyPeers> = Layer.sync(LegacyPeers, () => {
  const peers = new Map<string, LegacyPeer>()
  return {
    takeOver: (peer) =>
      Effect.sync(() => {
        const current = peers.get(peer.clientId)
        if (current === peer) return undefined
        // Re-inserted, so `discover` lists it in the order of the newest registration.
        peers.delete(peer.clientId)
        peers.set(peer.clientId, peer)
        return current
      }),
    release: (peer) =>
      Effect.sync(() => peers.get(peer.clientId) === peer && peers.delete(peer.clientId)),
    get: (clientId) => Effect.sync(() => peers.get(clientId)),
    ids: Effect.sync(() => [...peers.keys()]),
    list: Effect.sync(() => [...peers.values()]),
    notifyAll: (text) => Effect.sync(() => peers.forEach((p) => p.notify(text))),
    count: Effect.sync(() => peers.size)
  }
})
