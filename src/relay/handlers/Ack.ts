import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { invalid, refuse } from "../../domain/ErrorCode.ts"
import { AckPayload, type Envelope, payloadOf, receiptError } from "../../domain/Frames.ts"
import { MessageHash } from "../../domain/Ids.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"
import { deliveredFrame } from "../DeliveredFrame.ts"

/** As many as `messageHashes` may list. */
const MAX_ACK_HASHES = 500

const decode = payloadOf(AckPayload, "messageHashes must be a list of 1 to 500 message hashes")

/**
 * A recipient confirms messages handed to this session; their senders' live sessions get `message_delivered`.
 * A sealed receipt riding on the ack (capability "receipts") goes to the sender's sessions that asked for
 * receipts, also when another device of the recipient confirmed the message first; it is never stored.
 */
export const ack = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before acknowledging messages")
    const { messageHashes, receipts } = yield* decode(frame.payload)
    const named = receipts === undefined ? [] : Object.keys(receipts)
    if (named.length > MAX_ACK_HASHES) return yield* invalid(`receipts must name at most ${MAX_ACK_HASHES} messages`)
    const refused: Array<{ messageHash: string; message: string }> = []
    const sealed = new Map<string, string>()
    if (receipts !== undefined) {
      const listed = new Set(messageHashes)
      for (const h of named) {
        const error = listed.has(h) ? receiptError(receipts[h]) : "a receipt must name a message of messageHashes"
        if (error === undefined) sealed.set(h, receipts[h] as string)
        else refused.push({ messageHash: h, message: error })
      }
    }
    // Only what this session was handed: a session of the key that never received a message (one
    // registered with a proof seen elsewhere, or before the message reached it) cannot confirm it.
    const mine = messageHashes.filter((h) => session.wasHanded(h))
    const at = yield* Clock.currentTimeMillis
    const acked = mine.length === 0 ? [] : yield* deps.storage.acknowledge(reg.l2psUid, reg.key, mine, at)
    const push = (from: string, messageHash: string, fresh: boolean) =>
      Effect.gen(function*() {
        const receipt = sealed.get(messageHash)
        const plain = fresh ? deliveredFrame(messageHash, at) : undefined
        const full = receipt === undefined ? plain : deliveredFrame(messageHash, at, receipt)
        for (const p of yield* deps.peers.online(reg.l2psUid, from)) {
          const text = p.receipts ? full : plain
          if (text !== undefined) p.push(text)
        }
        if (deps.router.clustered) deps.router.unsafeReceipt(reg.l2psUid, from, messageHash, at, fresh, receipt)
      })
    for (const { messageHash, from } of acked) yield* push(from, messageHash, true)
    // Confirmed before by another device of this key: only the receipt is news.
    if (sealed.size > 0) {
      const first = new Set(acked.map((a) => a.messageHash))
      const again = mine.filter((h) => sealed.has(h) && !first.has(h))
      if (again.length > 0) for (const { messageHash, from } of yield* deps.storage.senders(reg.l2psUid, reg.key, again)) yield* push(from, messageHash, false)
    }
    // A session with quiet acks gets no `ack_response`: refused receipts come as its error (the ack counted).
    if (reg.quietAcks && refused.length > 0) {
      return yield* invalid(`The ack counted; receipts refused: ${refused.map((r) => `${r.messageHash.slice(0, 64)}: ${r.message}`).join("; ").slice(0, 1000)}`)
    }
    yield* session.reply(
      "ack_response",
      encodePayload("ack_response", {
        messageHashes: acked.map((a) => MessageHash.make(a.messageHash)),
        ...(refused.length === 0 ? {} : { refusedReceipts: refused })
      }),
      frame.requestId
    )
  })
