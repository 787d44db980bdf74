import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as StallWatch from "../connection/StallWatch.ts"
import * as AddressLimits from "../limits/AddressLimits.ts"
import * as RegistrationDeadline from "../limits/RegistrationDeadline.ts"
import type { ConnectionHandler } from "../transport/Transport.ts"
import { challenge } from "./handlers/Challenge.ts"
import { discover, requestPublicKey } from "./handlers/Lookup.ts"
import { message } from "./handlers/Message.ts"
import { debugQuestion, peerResponse } from "./handlers/Questions.ts"
import { register } from "./handlers/Register.ts"
import * as LegacyDeps from "./LegacyDeps.ts"
import * as LegacyConnection from "./LegacyConnection.ts"

/** The legacy signaling protocol (PROTOCOL-REFERENCE §1, DECISIONS "Legacy") as a connection handler. */
export class LegacyRelay extends Context.Tag("im/LegacyRelay")<LegacyRelay, ConnectionHandler>() {}

export const layer = Layer.scoped(
  LegacyRelay,
  Effect.gen(function*() {
    const deps = yield* LegacyDeps.make
    // Connections live in the relay's scope: stopping the node interrupts them and runs their cleanup.
    const sessions = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(sessions)<never>()
    const stalls = yield* StallWatch.make(deps.cfg.stalledSocketMillis)
    // A quiet session has no fiber to interrupt: the open ones are closed (and cleaned up) here, first.
    const open = new Set<() => Effect.Effect<void>>()
    yield* Effect.addFinalizer(() => Effect.forEach(open, (close) => close(), { concurrency: "unbounded", discard: true }))
    const handlers: Record<string, LegacyConnection.LegacyHandler> = {
      register: register(deps),
      discover: discover(deps),
      request_public_key: requestPublicKey(deps),
      message: message(deps),
      debug_question: debugQuestion,
      peer_response: peerResponse,
      challenge: challenge(deps)
    }
    const deadline = yield* RegistrationDeadline.make(deps.cfg)
    return {
      open: (conn) =>
        deadline.guard(conn, (registered) =>
          AddressLimits.guard(deps.addressLimits, conn, () => {
            const { shutdown, ...events } = LegacyConnection.open(deps, handlers, fork, conn, stalls, () => registered.registered())
            open.add(shutdown)
            return {
              ...events,
              closed: (code, reason) => {
                open.delete(shutdown)
                events.closed(code, reason)
              }
            }
          }))
    }
  })
)
