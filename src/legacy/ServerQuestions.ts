import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { NodeConfig } from "../config/NodeConfig.ts"
import { uuidV4 } from "./handlers/Questions.ts"
import { LegacyPeers } from "./LegacyPeers.ts"

/** A question that got no answer: no such peer, no answer in time, the peer left, or too many open. */
export class QuestionError extends Data.TaggedError("QuestionError")<{
  readonly reason: "PeerNotFound" | "Timeout" | "Disconnected" | "Busy"
  readonly clientId: string
}> {}

/**
 * The node's own code asks a registered legacy peer a question (`server_question`) and waits for its
 * `peer_response` (§1.8). The question reaches the peer only while it waits for no reply of its own.
 */
export class ServerQuestions extends Context.Tag("im/ServerQuestions")<ServerQuestions, {
  readonly ask: (
    clientId: string,
    question: unknown,
    options?: { readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<unknown, QuestionError>
}>() {}

export const layer: Layer.Layer<ServerQuestions, never, LegacyPeers | NodeConfig> = Layer.effect(
  ServerQuestions,
  Effect.gen(function*() {
    const peers = yield* LegacyPeers
    const cfg = yield* NodeConfig
    return {
      ask: (clientId, question, options) =>
        Effect.gen(function*() {
          const peer = yield* peers.get(clientId)
          if (peer === undefined) return yield* new QuestionError({ reason: "PeerNotFound", clientId })
          const questionId = yield* uuidV4
          const answer = peer.ask(questionId, question)
          if (answer === undefined) return yield* new QuestionError({ reason: "Busy", clientId })
          return yield* Deferred.await(answer).pipe(
            Effect.mapError((reason) => new QuestionError({ reason, clientId })),
            Effect.timeoutFail({
              duration: options?.timeout ?? cfg.legacyQuestionTimeoutMillis,
              onTimeout: () => new QuestionError({ reason: "Timeout", clientId })
            }),
            Effect.ensuring(Effect.sync(() => peer.forget(questionId)))
          )
        })
    }
  })
)
