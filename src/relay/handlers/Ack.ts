import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { refuse } from "../../domain/ErrorCode.ts"
import { AckPayload, encodeFrame, type Envelope, payloadOf } from "../../domain/Frames.ts"
import { MessageHash } from "../../domain/Ids.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

const decode = payloadOf(AckPayload, "messageHashes must be a list of 1 to 500 message hashes")

/** A recipient confirms messages handed to this session; their senders' live sessions get `message_delivered`. */
export const ack = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return yield* refuse("REGISTRATION_REQUIRED", "Register before acknowledging messages")
    const { messageHashes } = yield* decode(frame.payload)
    // Only what this session was handed: a session of the key that never received a message (one
    // registered with a proof seen elsewhere, or before the message reached it) cannot confirm it.
    const mine = messageHashes.filter(session.wasHanded)
    const at = yield* Clock.currentTimeMillis
    const acked = mine.length === 0 ? [] : yield* deps.storage.acknowledge(reg.l2psUid, reg.key, mine, at)
    for (const { messageHash, from } of acked) {
      const text = encodeFrame("message_delivered", encodePayload("message_delivered", { messageHash: MessageHash.make(messageHash), at }), at)
      for (const p of yield* deps.peers.online(reg.l2psUid, from)) p.push(text)
      if (deps.router.clustered) deps.router.unsafeReceipt(reg.l2psUid, from, text)
    }
    yield* session.reply(
      "ack_response",
      encodePayload("ack_response", { messageHashes: acked.map((a) => MessageHash.make(a.messageHash)) }),
      frame.requestId
    )
  })
