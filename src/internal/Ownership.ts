import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/**
 * A term of ownership: `epoch` grows with every change of owner, so a write made under an old term
 * can be refused where it lands (the fencing check when a batch is saved).
 */
export interface Fence {
  readonly name: string
  readonly epoch: number
}

export interface OwnershipShape {
  readonly kind: "single" | "postgres"
  /**
   * Runs `work` in its own scope whenever this node owns `name`, and waits while another node does.
   * When ownership is lost the work is interrupted (its scope closed) and the wait starts again.
   * Never returns; ends with the caller's scope.
   */
  readonly runOwned: <R>(
    name: string,
    work: (fence: Fence | undefined) => Effect.Effect<unknown, never, R | Scope.Scope>
  ) => Effect.Effect<void, never, Exclude<R, Scope.Scope> | Scope.Scope>
  /** What this node owns now, for `/health`. */
  readonly owned: Effect.Effect<ReadonlyArray<Fence>>
  /** Whether the connection holding the locks answers (always, alone). */
  readonly healthy: Effect.Effect<boolean>
}

/**
 * Which node runs a job that must run once per database (a network's pipeline, the local chain's
 * block producer). Optional in a host's context: without it the node owns everything, as alone.
 */
export class Ownership extends Context.Tag("im/Ownership")<Ownership, OwnershipShape>() {}

/** One node: it owns everything, always, with no fence to check; the work runs in the caller's scope. */
export const single: OwnershipShape = {
  kind: "single",
  runOwned: <R>(_name: string, work: (fence: Fence | undefined) => Effect.Effect<unknown, never, R | Scope.Scope>) =>
    Effect.asVoid(work(undefined)) as Effect.Effect<void, never, Exclude<R, Scope.Scope> | Scope.Scope>,
  owned: Effect.succeed([]),
  healthy: Effect.succeed(true)
}

export const layerSingle: Layer.Layer<Ownership> = Layer.succeed(Ownership, single)

/** The host's ownership if it gave one, else `single`. */
export const current: Effect.Effect<OwnershipShape> = Effect.map(Effect.serviceOption(Ownership), Option.getOrElse(() => single))
