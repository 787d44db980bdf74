import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { StorageError } from "../../storage/Storage.ts"
import type { LegacyDeps } from "../LegacyDeps.ts"
import { encodeFrame } from "../LegacyFrames.ts"
import type { QueuedLegacyMessage } from "../LegacyStorage.ts"

/** A relayed message as the 2.9.1 client reads it: the object as received and the sender's id. */
export const liveFrame = (message: unknown, fromId: string) => encodeFrame("message", { message, fromId })

/** A message delivered from the offline store also carries its server timestamp (ms). */
export const queuedFrame = (m: QueuedLegacyMessage) =>
  encodeFrame("message", { message: m.message, fromId: m.from, timestamp: m.timestamp })

const PAGE = 100

export interface CatchUpIo {
  /** Whether a request of the client waits: its reply must not be preceded by more messages. */
  readonly pending: () => boolean
  readonly send: (text: string) => Effect.Effect<void>
  /** True once everything sent so far reached the socket, false when it closed first. */
  readonly written: Effect.Effect<boolean>
}

/**
 * Delivers what storage holds for a client, oldest first. Rows become `sent` only once written to the
 * socket, so a drop mid-way loses nothing. Returns false when it paused for a waiting request.
 */
export const catchUp = (deps: LegacyDeps, clientId: string, io: CatchUpIo): Effect.Effect<boolean, StorageError> =>
  Effect.gen(function*() {
    let after: { timestamp: number; id: string } | undefined
    while (true) {
      const page: ReadonlyArray<QueuedLegacyMessage> = yield* deps.storage.queued(clientId, after, PAGE)
      const sent: Array<QueuedLegacyMessage> = []
      for (const m of page) {
        if (io.pending()) break
        yield* io.send(queuedFrame(m))
        sent.push(m)
      }
      if (sent.length > 0) {
        if (!(yield* io.written)) return true
        yield* deps.storage.markSent(sent.map((m) => m.id), yield* Clock.currentTimeMillis)
        const last = sent[sent.length - 1]!
        after = { timestamp: last.timestamp, id: last.id }
      }
      if (sent.length < page.length) return false
      if (page.length < PAGE) return true
    }
  })
