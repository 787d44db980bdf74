import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { NodeConfig } from "../node/NodeConfig.ts"

export type ProofCheck = "fresh" | "expired" | "replayed" | "busy"

/** Proof freshness and single use: a (kind, key, timestamp) triple is accepted once inside the window. */
export class ReplayGuard extends Context.Tag("im/ReplayGuard")<ReplayGuard, {
  /** Whether the timestamp lies inside the window of the node's clock. */
  readonly inWindow: (timestamp: number) => Effect.Effect<boolean>
  /** Records a verified proof; anything but "fresh" refuses it. */
  readonly claim: (kind: string, key: string, timestamp: number) => Effect.Effect<ProofCheck>
  readonly size: Effect.Effect<number>
}>() {}

export const layer: Layer.Layer<ReplayGuard, never, NodeConfig> = Layer.scoped(
  ReplayGuard,
  Effect.gen(function*() {
    const cfg = yield* NodeConfig
    const window = cfg.proofWindowMillis
    const seen = new Map<string, number>()
    const prune = Effect.map(Clock.currentTimeMillis, (now) => {
      for (const [id, expiry] of seen) if (expiry < now) seen.delete(id)
    })
    yield* prune.pipe(Effect.repeat(Schedule.spaced(Math.max(1000, Math.floor(window / 4)))), Effect.forkScoped)
    const inWindow = (timestamp: number) =>
      Effect.map(Clock.currentTimeMillis, (now) => Math.abs(now - timestamp) <= window)
    return {
      size: Effect.sync(() => seen.size),
      inWindow,
      claim: (kind, key, timestamp) =>
        Effect.map(Clock.currentTimeMillis, (now): ProofCheck => {
          if (Math.abs(now - timestamp) > window) return "expired"
          const id = `${kind}:${key}:${timestamp}`
          if (seen.has(id)) return "replayed"
          // The map is pruned on the clock; this only bites under a flood of valid proofs.
          if (seen.size >= cfg.replayCacheMax) return "busy"
          seen.set(id, timestamp + window)
          return "fresh"
        })
    }
  })
)
