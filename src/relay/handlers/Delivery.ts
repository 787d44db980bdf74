import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../internal/Metrics.ts"
import type { StorageError, StoredMessage } from "../../storage/Storage.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { Registration, ConnectionContext } from "../ConnectionContext.ts"

const PAGE = 100

/**
 * A `message` frame around the payload's JSON text (as the sender wrote it, or as storage returns it):
 * the ciphertext is relayed, never parsed and serialised again.
 */
export const messageFrame = (from: string, encryptedJson: string, messageHash: string, offline: boolean, now: number) =>
  `{"type":"message","payload":{"from":${JSON.stringify(from)},"encrypted":${encryptedJson},"messageHash":${
    JSON.stringify(messageHash)
  },"offline":${offline}},"timestamp":${now}}`

/**
 * A copy of a message its key sent from another session: a `message` frame whose `from` is the
 * receiving session's own key and whose `to` says to whom it went (docs/PROTOCOL.md, "Copies").
 */
export const copyFrame = (from: string, to: string, encryptedJson: string, messageHash: string, now: number) =>
  `{"type":"message","payload":{"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"encrypted":${encryptedJson},"messageHash":${
    JSON.stringify(messageHash)
  },"offline":false},"timestamp":${now}}`

/**
 * Delivers what storage holds for the session's key, oldest first, a page at a time; a page is marked
 * handed over only once it is written to the socket, so a drop mid-way loses nothing.
 */
export const flushPending = (
  deps: RelayDeps,
  session: ConnectionContext,
  reg: Registration,
  includeAwaitingAck: boolean
): Effect.Effect<void, StorageError> =>
  Effect.gen(function*() {
    let after: { timestamp: number; id: string } | undefined = undefined
    while (true) {
      const page: ReadonlyArray<StoredMessage> = yield* deps.storage.pending({ l2psUid: reg.l2psUid, to: reg.key, includeAwaitingAck, after, limit: PAGE })
      if (page.length === 0) return
      const now = yield* Clock.currentTimeMillis
      for (const m of page) {
        yield* session.send({ text: messageFrame(m.from, m.encryptedJson, m.messageHash, true, now) })
      }
      if (!(yield* session.written)) return
      if (reg.ackCapable) for (const m of page) session.handed(m.messageHash)
      yield* deps.storage.markHanded(page.map((m) => m.id), reg.ackCapable, now)
      yield* Metric.incrementBy(Metrics.messagesOut, page.length)
      const last = page[page.length - 1]!
      after = { timestamp: last.timestamp, id: last.id }
      if (page.length < PAGE) return
    }
  })
