import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { supervise } from "./supervise.ts"

/**
 * Keys each due `delayMillis` after they were added, with what to do then. Every key waits as long, so
 * insertion order is due order, and one fiber sleeps until the first: no timer per key, and none at all
 * while nothing waits (a quiet server, or a test moving its clock by hours, has nothing firing).
 */
/** What to do when a key's deadline passes: an object with a method, so a holder need not make a closure. */
export interface Due {
  readonly due: () => void
}

export interface Deadlines<K> {
  /** Starts `key`'s wait; a key already waiting keeps its first deadline. */
  readonly add: (key: K, onDue: Due) => void
  readonly delete: (key: K) => void
  readonly size: () => number
}

/** A set of deadlines for the scope: `name` names its supervised sweep. */
export const make = <K>(name: string, delayMillis: number): Effect.Effect<Deadlines<K>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const due = new Map<K, { readonly at: number; readonly onDue: Due }>()
    const added = yield* Queue.sliding<void>(1)
    const sweep = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (const [key, d] of due) {
        if (d.at > now) return Effect.sleep(d.at - now)
        due.delete(key)
        d.onDue.due()
      }
      return Queue.take(added)
    })
    yield* supervise(name, Effect.forever(sweep))
    return {
      add: (key, onDue) => {
        if (due.has(key)) return
        if (due.size === 0) added.unsafeOffer(undefined)
        due.set(key, { at: clock.unsafeCurrentTimeMillis() + delayMillis, onDue })
      },
      delete: (key) => {
        due.delete(key)
      },
      size: () => due.size
    }
  })
