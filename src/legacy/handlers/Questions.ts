import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { type LegacyEnvelope, payloadOf, PeerResponsePayload, refuse } from "../LegacyFrames.ts"
import type { LegacyConnectionContext } from "../LegacyConnectionContext.ts"

export const DEBUG_QUESTION = "This is a debug question. What is your favorite programming language?"

const hex4 = Effect.map(Random.nextIntBetween(0, 0x10000), (n) => n.toString(16).padStart(4, "0"))

/** A random (version 4) UUID from Effect's `Random`, so tests can seed it. */
export const uuidV4: Effect.Effect<string> = Effect.map(Effect.all(Array.from({ length: 8 }, () => hex4)), (h) => {
  const variant = ((parseInt(h[4]!, 16) & 0x3fff) | 0x8000).toString(16)
  return `${h[0]}${h[1]}-${h[2]}-4${h[3]!.slice(1)}-${variant}-${h[5]}${h[6]}${h[7]}`
})

/** `debug_question`: answered with a `server_question` whose `peer_response` is then accepted. */
export const debugQuestion = (session: LegacyConnectionContext, _frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    if (session.registration === undefined) {
      return yield* refuse("REGISTRATION_REQUIRED", "You must register before sending debug messages")
    }
    const questionId = yield* uuidV4
    session.expect(questionId)
    yield* session.reply("server_question", { questionId, question: { text: DEBUG_QUESTION } })
  })

const decodeResponse = payloadOf(PeerResponsePayload, "Missing questionId")

/** `peer_response`: completes the question it answers, with no reply; an unknown question is an error. */
export const peerResponse = (session: LegacyConnectionContext, frame: LegacyEnvelope) =>
  Effect.gen(function*() {
    const { questionId, response } = yield* decodeResponse(frame.payload)
    if (!session.answer(questionId, response)) {
      return yield* refuse("INVALID_MESSAGE", `Unknown or expired question ${questionId}`)
    }
    yield* Effect.logDebug(`peer_response to ${questionId}`)
  })
