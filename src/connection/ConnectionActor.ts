import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"
import { TokenBucket } from "../limits/TokenBucket.ts"
import type { Connection } from "../transport/Transport.ts"
import { Inbox } from "./Inbox.ts"
import { Outbox, type Writer } from "./Outbox.ts"
import type { StallWatch } from "./StallWatch.ts"

/**
 * Where a connection is in its life: `opening` until it registers, `registered` while other connections
 * may deliver to it, `closing` once its socket is gone or going (no frame is taken, nothing more is
 * handled), `closed` once its teardown has run. Forward only, but for `registered` → `opening` when a
 * connection unregisters.
 */
export type Phase = "opening" | "registered" | "closing" | "closed"

/** Close code of a socket whose frames outran its inbox. */
export const INBOX_FULL_CODE = 1008

export interface ActorOptions<Item> {
  readonly conn: Connection
  /** What the outbox writes through, when not the socket itself (a session that encodes frames). */
  readonly writer?: Writer | undefined
  readonly inboxCapacity: number
  readonly outbox: {
    readonly capacity: number
    /** Slots kept for the connection's own replies (see `Outbox`). */
    readonly reserved: number
    readonly maxLiveBytes: number
    readonly maxBytes: number
  }
  readonly frameRate: number
  readonly frameBurst: number
  readonly stalls: StallWatch
  /** Runs an effect of the connection in the server's scope. */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  /** What the protocol on top does; an object with methods, so that a session need not carry closures. */
  readonly protocol: ActorProtocol
}

export interface ActorProtocol {
  /**
   * The processor's next piece of work, or undefined when there is none (the processor then ends). Its
   * failures are defects: a protocol answers what a peer did wrong itself.
   */
  readonly nextStep: () => Effect.Effect<void, unknown> | undefined
  /** Frames were written to the socket: the outbox has room again. */
  readonly onWritten?: (() => void) | undefined
  /**
   * The teardown, in the order it runs: the finalizers of the connection's scope. Built when the scope
   * is, so that a held connection carries none of it.
   */
  readonly teardownSteps: () => ReadonlyArray<Effect.Effect<void>>
}

let lastId = 0

/**
 * What both servers' connections share: a bounded inbox drained, in order, by a processor fiber that
 * exists only while there is work (a held, quiet connection has no fiber: a suspended one costs ~3 KB,
 * and nodes hold tens of thousands of connections); a bounded outbox written as frames come and on the
 * socket's drain; the frame budget; a phase; and a scope whose finalizers are the teardown, closed once.
 *
 * The protocol on top decides what the inbox holds and what the processor does next (`next`). Methods
 * prefixed `unsafe` run synchronously from plain code (the transport's callbacks, the fast path).
 */
export class ConnectionActor<Item> {
  readonly id = ++lastId
  readonly inbox: Inbox<Item>
  readonly outbox: Outbox
  /** Frames the connection may send: `burst` at once, `rate` per second. */
  readonly frameBudget: TokenBucket
  private currentPhase: Phase = "opening"
  /** Set from the processor's start until it finds nothing to do (its fiber may end before `fork` returns). */
  private running = false
  private worker: Fiber.RuntimeFiber<void> | undefined
  private scope: Scope.CloseableScope | undefined
  private teardownDone: Deferred.Deferred<void> | undefined
  private readonly conn: Connection
  private readonly fork: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  private readonly protocol: ActorProtocol

  constructor(options: ActorOptions<Item>) {
    const { conn, outbox } = options
    this.conn = conn
    this.fork = options.fork
    this.protocol = options.protocol
    this.inbox = new Inbox<Item>(options.inboxCapacity)
    this.outbox = new Outbox(
      options.writer ?? conn,
      outbox.capacity,
      outbox.reserved,
      outbox.maxLiveBytes,
      outbox.maxBytes,
      options.protocol,
      options.stalls.hooks(this.id, conn)
    )
    this.frameBudget = new TokenBucket(options.frameBurst, options.frameRate, 0)
  }

  get phase(): Phase {
    return this.currentPhase
  }

  /** Closing or closed: frames are no longer taken and replies have no reader. */
  get isClosing(): boolean {
    return this.currentPhase === "closing" || this.currentPhase === "closed"
  }

  /** Whether nothing is being handled nor waits to be (a frame may then be handled in the callback). */
  get isIdle(): boolean {
    return !this.running && this.inbox.size === 0
  }

  /** `opening` → `registered`; false, and nothing changed, once the connection is closing. */
  unsafeRegistered(): boolean {
    if (this.isClosing) return false
    this.currentPhase = "registered"
    return true
  }

  /** `registered` → `opening`. */
  unsafeUnregistered(): void {
    if (this.currentPhase === "registered") this.currentPhase = "opening"
  }

  /**
   * Stops taking frames and handling them before the socket's close is seen (a connection evicted by
   * another); the teardown still runs on `close`.
   */
  unsafeStop(): void {
    if (!this.isClosing) this.currentPhase = "closing"
  }

  /** Queues an item for the processor, starting it if need be; a full inbox closes the socket. */
  unsafeOffer(item: Item): void {
    if (this.isClosing) return
    if (!this.inbox.offer(item)) return this.conn.close(INBOX_FULL_CODE, "Too many frames in flight")
    this.unsafeWake()
  }

  /** Starts the processor unless it runs (it then finds the new work itself) or the connection is closing. */
  unsafeWake(): void {
    if (this.running || this.isClosing) return
    this.running = true
    const fiber = this.fork(this.work)
    if (this.running) this.worker = fiber
  }

  private readonly loop: Effect.Effect<void, unknown> = Effect.suspend(() => {
    const step = this.protocol.nextStep()
    if (step === undefined) {
      this.running = false
      this.worker = undefined
      return Effect.void
    }
    return Effect.zipRight(step, this.loop)
  })

  private readonly work: Effect.Effect<void> = Effect.orDie(this.loop)

  /**
   * The connection's scope, made when first needed (by its close, or by a finalizer added before): the
   * transport's callbacks are plain code, a scope is made by an effect, and a held connection is spared
   * carrying one (tens of thousands are held at once).
   */
  private get openScope(): Effect.Effect<Scope.CloseableScope> {
    return Effect.suspend(() => {
      if (this.scope !== undefined) return Effect.succeed(this.scope)
      return Effect.flatMap(Scope.make(), (scope) => {
        this.scope = scope
        // A scope runs its finalizers last added first.
        const teardown = [...this.protocol.teardownSteps()].reverse()
        return Effect.as(Effect.forEach(teardown, (fin) => Scope.addFinalizer(scope, fin), { discard: true }), scope)
      })
    })
  }

  /** Adds a step to the teardown, run before those already there (as a scope's finalizers are). */
  addFinalizer(finalizer: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.flatMap(this.openScope, (scope) => Scope.addFinalizer(scope, finalizer))
  }

  /**
   * Closes the connection once, however many ask: the frame being handled is abandoned (its fiber
   * interrupted), those still queued are dropped, then the scope is closed, running the teardown. Every
   * caller returns once it has run.
   */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => this.closeOnce())
  }

  private closeOnce(): Effect.Effect<void> {
    if (this.teardownDone !== undefined) return Deferred.await(this.teardownDone)
    const done = this.teardownDone = Deferred.unsafeMake<void>(FiberId.none)
    this.currentPhase = "closing"
    const current = this.running ? this.worker : undefined
    const teardown = Effect.flatMap(this.openScope, (scope) => Scope.close(scope, Exit.void))
    return (current === undefined ? teardown : Effect.zipRight(Fiber.interrupt(current), teardown)).pipe(
      Effect.ensuring(Effect.sync(() => {
        this.inbox.clear()
        this.currentPhase = "closed"
        Deferred.unsafeDone(done, Exit.void)
      })),
      Effect.uninterruptible
    )
  }

  /** `close` from the transport's callback, run in the server's scope. */
  unsafeClose(): void {
    this.fork(this.close)
  }
}
