import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../ops/Metrics.ts"
import { encodeFrame } from "../../domain/Frames.ts"
import type { StorageError, StoredMessage } from "../../storage/Storage.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { Registration, SessionState } from "../SessionState.ts"

const PAGE = 100

export const messageFrame = (from: string, encrypted: unknown, messageHash: string, offline: boolean, now: number) =>
  encodeFrame("message", { from, encrypted, messageHash, offline }, now)

/** `messageFrame` of a live message around its payload's text as the sender wrote it. */
export const liveMessageFrame = (from: string, encryptedJson: string, messageHash: string, now: number) =>
  `{"type":"message","payload":{"from":${JSON.stringify(from)},"encrypted":${encryptedJson},"messageHash":${
    JSON.stringify(messageHash)
  },"offline":false},"timestamp":${now}}`

/**
 * Delivers what storage holds for the session's key, oldest first, a page at a time; a page is marked
 * handed over only once it is written to the socket, so a drop mid-way loses nothing.
 */
export const flushPending = (
  deps: RelayDeps,
  session: SessionState,
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
        yield* session.send({ text: messageFrame(m.from, m.encrypted, m.messageHash, true, now) })
      }
      if (!(yield* session.written)) return
      yield* deps.storage.markHanded(page.map((m) => m.id), reg.ackCapable, now)
      yield* Metric.incrementBy(Metrics.messagesOut, page.length)
      const last = page[page.length - 1]!
      after = { timestamp: last.timestamp, id: last.id }
      if (page.length < PAGE) return
    }
  })
