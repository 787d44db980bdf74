import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../internal/Metrics.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

/** Takes the session out of the registry; the key's last session going away is a `peer_left` (see `Presence`). */
export const unregister = (deps: RelayDeps, session: ConnectionContext) =>
  Effect.gen(function*() {
    const reg = session.registration
    if (reg === undefined) return
    session.registration = undefined
    const { last, removed } = yield* deps.roster.remove(reg.peer)
    if (removed) yield* Metric.incrementBy(Metrics.sessions, -1)
    // The subject follows this node's sessions, `last` the cluster's (see Register).
    yield* deps.router.track(reg.l2psUid, reg.key)
    if (last) yield* deps.presence.changed(reg.l2psUid, reg.key, false)
  })
