/**
 * What a person typed, kept until the node has it: each message is written to the message store
 * (sealed like the rest of the history) with status `sending` before anything goes on the wire, and
 * sent from there in order, one peer's messages never overtaking each other. A message is sealed
 * once, when typed, so a resend is the same frame under the same `messageHash` and the node answers
 * it with the original outcome instead of storing it twice (docs/PROTOCOL.md rule 7).
 *
 * Opening the outbox over a store takes up what a previous run left `sending`. A message fails only
 * for a permanent reason (the node refuses it, or its recipient stays unknown past
 * `unknownRecipientMs`); a lost connection is only a wait. States: sending (in the outbox) → sent or
 * queued (the node has it, the recipient online or not) → delivered (a receipt) | failed (with why).
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { L2psError } from "./L2psPeer.ts"
import type { ChatRecord, MessageStoreError, MessageStoreShape } from "./MessageStore.ts"

/** Why a send did not go through: `retry` waits for the connection, the others end the message. */
export interface Failure {
  readonly kind: "retry" | "permanent" | "unknown-recipient"
  readonly message: string
}

export interface OutboxOptions {
  readonly store: MessageStoreShape
  /** Puts one message on the wire; what the node did with it. */
  readonly send: (record: ChatRecord) => Effect.Effect<"sent" | "queued", Failure>
  /** Called after each change of a message's state (written to the store first). */
  readonly onChange?: (record: ChatRecord) => Effect.Effect<void>
  /** How long a recipient may stay unknown before its messages fail (default 10 minutes). */
  readonly unknownRecipientMs?: number
  /** Waits between rounds while something waits (default 250 ms doubling to 15 s); `kick` cuts one short. */
  readonly retryMinMs?: number
  readonly retryMaxMs?: number
  /** Messages waiting at most (default 10,000): past it `enqueue` fails, nothing is dropped. */
  readonly capacity?: number
}

export interface Outbox {
  /** Stores the message as `sending`, then wakes the sender; fails when the store or the outbox is full. */
  readonly enqueue: (record: ChatRecord) => Effect.Effect<ChatRecord, MessageStoreError | OutboxFull>
  /** A connection is there (again): try what waits now. */
  readonly kick: Effect.Effect<void>
  /** Messages not yet taken by the node, oldest first. */
  readonly pending: Effect.Effect<ReadonlyArray<ChatRecord>>
}

export class OutboxFull extends Data.TaggedError("OutboxFull")<{ readonly message: string }> {}

/** A refusal of the message itself is permanent; a connection, timeout or rate limit is a wait (a resend is idempotent). */
export const classify = (e: L2psError): Failure => {
  switch (e.code) {
    case "INVALID_MESSAGE":
    case "KEY_BANNED":
    case "L2PS_NOT_FOUND":
      return { kind: "permanent", message: e.message }
    case "PEER_NOT_FOUND":
    case "DEVICE_NOT_FOUND":
      return { kind: "unknown-recipient", message: e.message }
    default:
      return { kind: "retry", message: e.message }
  }
}

export const make = (options: OutboxOptions): Effect.Effect<Outbox, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { store } = options
    const unknownRecipientMs = options.unknownRecipientMs ?? 600_000
    const retryMinMs = options.retryMinMs ?? 250
    const retryMaxMs = options.retryMaxMs ?? 15_000
    const capacity = options.capacity ?? 10_000
    const onChange = options.onChange ?? (() => Effect.void)

    const waiting: Array<ChatRecord> = (yield* store.recent(Number.MAX_SAFE_INTEGER))
      .filter((r) => r.direction === "out" && r.status === "sending")
    /** messageHash → when its recipient was first found unknown (kept in memory: a restart gives it the bound again) */
    const unknownSince = new Map<string, number>()
    const wake = yield* Queue.sliding<void>(1)

    const settle = (record: ChatRecord, patch: Partial<ChatRecord>) =>
      Effect.gen(function*() {
        waiting.splice(waiting.indexOf(record), 1)
        unknownSince.delete(record.messageHash)
        // A receipt may have overtaken the reply; `delivered` stays.
        const now = yield* store.get(record.messageHash)
        const next = now?.status === "delivered" && patch.status !== "failed" ? {} : patch
        const done = (yield* store.update(record.messageHash, next).pipe(Effect.orDie)) ?? { ...record, ...next }
        yield* onChange(done)
      })

    /** One pass over what waits; true when something is left to retry. */
    const round = Effect.gen(function*() {
      const blocked = new Set<string>()
      for (const record of [...waiting]) {
        if (blocked.has(record.peer)) continue
        const result = yield* Effect.either(options.send(record))
        if (Either.isRight(result)) {
          yield* settle(record, { status: result.right })
          continue
        }
        const failure = result.left
        if (failure.kind === "retry") return true
        if (failure.kind === "unknown-recipient") {
          const now = yield* Clock.currentTimeMillis
          const since = unknownSince.get(record.messageHash) ?? now
          unknownSince.set(record.messageHash, since)
          if (now - since < unknownRecipientMs) {
            blocked.add(record.peer)
            continue
          }
        }
        yield* settle(record, { status: "failed", error: failure.message })
      }
      return blocked.size > 0
    })

    yield* Effect.gen(function*() {
      let delay = retryMinMs
      for (;;) {
        const again = yield* round
        if (!again) {
          delay = retryMinMs
          yield* Queue.take(wake)
          continue
        }
        yield* Effect.raceFirst(Effect.sleep(Duration.millis(delay)), Queue.take(wake))
        delay = Math.min(retryMaxMs, delay * 2)
      }
    }).pipe(Effect.forkScoped)
    if (waiting.length > 0) yield* Queue.offer(wake, undefined)

    return {
      enqueue: (record) =>
        Effect.gen(function*() {
          if (waiting.length >= capacity) return yield* Effect.fail(new OutboxFull({ message: `the outbox holds ${capacity} messages already` }))
          const queued: ChatRecord = { ...record, status: "sending" }
          if (yield* store.put(queued)) waiting.push(queued)
          yield* Queue.offer(wake, undefined)
          return queued
        }),
      kick: Queue.offer(wake, undefined).pipe(Effect.asVoid),
      pending: Effect.sync(() => [...waiting])
    }
  })
