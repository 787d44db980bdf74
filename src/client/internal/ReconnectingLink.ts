import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Link from "./Link.ts"
import { type ReconnectOptions, schedule } from "../Reconnect.ts"

/**
 * The reconnecting connection both clients share: open a socket, run the protocol's handshake
 * (registration) while every frame is dispatched in order, wait for the close, then back off on the
 * reconnect schedule and start again, until stopped or out of attempts.
 */
export interface Hooks<R, E> {
  readonly url: string
  readonly reconnect: ReconnectOptions
  /** Unread frames allowed before the socket is dropped. */
  readonly inboxCapacity: number
  /** The socket is open (`reconnect`: it is not the first one). */
  readonly opened: (link: Link.Link, reconnect: boolean) => Effect.Effect<void>
  /** Registration on the fresh socket; frames are already being dispatched. */
  readonly handshake: (link: Link.Link, reconnect: boolean) => Effect.Effect<R, E>
  readonly registered: (result: R, reconnect: boolean) => Effect.Effect<void>
  /** The handshake failed: true to close and retry later, false to stop. */
  readonly refused: (error: E, reconnect: boolean) => Effect.Effect<boolean>
  readonly dispatch: (frame: Link.Frame) => Effect.Effect<void>
  /** The socket closed (or could not open: `opened` false); false to stop instead of reconnecting. */
  readonly closed: (opened: boolean, info: Link.CloseInfo | undefined) => Effect.Effect<boolean>
  /** About to wait `delay` before attempt number `attempt` (1-based). */
  readonly retrying: (delay: Duration.Duration, attempt: number) => Effect.Effect<void>
  readonly gaveUp: Effect.Effect<void>
}

type Outcome = "closed" | "stop"

const session = <R, E>(hooks: Hooks<R, E>, reconnect: boolean, onOpen: Effect.Effect<void>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const link = yield* Link.open(hooks.url, hooks.inboxCapacity)
      yield* onOpen
      yield* hooks.opened(link, reconnect)
      const reader = yield* Effect.gen(function*() {
        while (true) {
          const next = yield* Queue.take(link.incoming)
          if (next === Link.Closed) return
          yield* hooks.dispatch(next)
        }
      }).pipe(Effect.forkScoped)
      const registration = yield* hooks.handshake(link, reconnect).pipe(Effect.either)
      let outcome: Outcome = "closed"
      let info: Link.CloseInfo | undefined
      if (registration._tag === "Right") {
        yield* hooks.registered(registration.right, reconnect)
        yield* Fiber.join(reader)
        info = yield* Deferred.await(link.closed)
      } else if (!(yield* hooks.refused(registration.left, reconnect))) {
        outcome = "stop"
      }
      yield* link.close
      const retry = yield* hooks.closed(true, info)
      return retry ? outcome : "stop"
    })
  ).pipe(
    Effect.catchTag("LinkError", () => hooks.closed(false, undefined).pipe(Effect.map((retry): Outcome => (retry ? "closed" : "stop"))))
  )

/** Runs until stopped: `refused` said so, the attempts ran out, or the fiber is interrupted. */
export const run = <R, E>(hooks: Hooks<R, E>): Effect.Effect<void> =>
  Effect.gen(function*() {
    let attempt = 0
    // Announced only when there is an attempt to come: the last step (done) has an output too.
    const delays = schedule(hooks.reconnect).pipe(
      Schedule.onDecision((d, decision) => (ScheduleDecision.isContinue(decision) ? hooks.retrying(d, attempt) : Effect.void))
    )
    const driver = yield* Schedule.driver(delays)
    const onOpen = Effect.zipRight(driver.reset, Effect.sync(() => void (attempt = 0)))
    let reconnect = false
    while (true) {
      const outcome = yield* session(hooks, reconnect, onOpen)
      if (outcome === "stop") return
      reconnect = true
      attempt++
      const more = yield* driver.next(undefined).pipe(Effect.option)
      if (Option.isNone(more)) return yield* hooks.gaveUp
    }
  })
