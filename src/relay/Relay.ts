import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metrics from "../internal/Metrics.ts"
import type { ConnectionHandler } from "../transport/Transport.ts"
import * as AddressLimits from "../limits/AddressLimits.ts"
import { ack } from "./handlers/Ack.ts"
import { history } from "./handlers/History.ts"
import { discover, requestPublicKey } from "./handlers/Lookup.ts"
import { inviteDelete, inviteFetch, inviteStore } from "./handlers/Invites.ts"
import { nodeInfo } from "./handlers/NodeInfo.ts"
import { bundleFetch, deviceRemove, devices, prekeysCount, prekeysPublish } from "./handlers/Prekeys.ts"
import { proofRequest } from "./handlers/ProofRequest.ts"
import { register } from "./handlers/Register.ts"
import { send, unsafeSend } from "./handlers/Send.ts"
import * as RegistrationDeadline from "../limits/RegistrationDeadline.ts"
import * as RelayDeps from "./RelayDeps.ts"
import * as RelayConnection from "./RelayConnection.ts"
import * as StallWatch from "../connection/StallWatch.ts"

/** The L2PS messaging protocol as a connection handler, independent of any server. */
export class Relay extends Context.Tag("im/Relay")<Relay, ConnectionHandler>() {}

export const layer = Layer.scoped(
  Relay,
  Effect.gen(function*() {
    const deps = yield* RelayDeps.make
    // Connections live in the relay's scope: stopping the node interrupts them and runs their cleanup.
    const sessions = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(sessions)<never>()
    const stalls = yield* StallWatch.make(deps.cfg.stalledSocketMillis)
    // A quiet session has no fiber to interrupt: the open ones are closed (and cleaned up) here, first.
    const open = new Set<RelayConnection.Session>()
    yield* Effect.addFinalizer(() => Effect.forEach(open, (session) => session.shutdown(), { concurrency: "unbounded", discard: true }))
    const handlers: Record<string, RelayConnection.Handler> = {
      register: register(deps),
      send: send(deps),
      history: history(deps),
      discover: discover(deps),
      request_public_key: requestPublicKey(deps),
      ack: ack(deps),
      proof_request: proofRequest(deps),
      node_info: nodeInfo(deps),
      prekeys_publish: prekeysPublish(deps),
      prekeys_count: prekeysCount(deps),
      bundle_fetch: bundleFetch(deps),
      devices: devices(deps),
      device_remove: deviceRemove(deps),
      invite_store: inviteStore(deps),
      invite_fetch: inviteFetch(deps),
      invite_delete: inviteDelete(deps)
    }
    const fastHandlers: Record<string, RelayConnection.FastHandler> = { send: unsafeSend(deps) }
    const deadline = yield* RegistrationDeadline.make(deps.cfg)
    const shared: RelayConnection.Shared = {
      deps,
      handlers,
      fastHandlers,
      fork,
      stalls,
      closed: (session) => {
        open.delete(session)
        Metrics.connections.unsafeModify(-1, [])
      }
    }
    return {
      open: (conn) =>
        deadline.guard(conn, (registered) => AddressLimits.guard(deps.addressLimits, conn, () => {
          Metrics.connections.unsafeModify(1, [])
          const session = RelayConnection.open(shared, conn, registered)
          open.add(session)
          return session
        }))
    }
  })
)
