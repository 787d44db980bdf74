import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Fifo } from "../internal/Fifo.ts"

/**
 * The input of a writer that serves requests a batch at a time (the group commit, the pending probe):
 * FIFO, bounded both in items and in bytes (messages are up to a few hundred KB, so a count alone does
 * not bound memory), taken a batch at a time, also bounded in both. Offers wait for room; one consumer
 * takes.
 */
export class BatchQueue<A> {
  private readonly items = new Fifo<A>()
  private bytes = 0
  private taker: Deferred.Deferred<void> | undefined
  private roomWaiters: Array<Deferred.Deferred<void>> = []

  constructor(
    private readonly maxItems: number,
    private readonly maxBytes: number,
    private readonly weigh: (a: A) => number
  ) {}

  get size(): number {
    return this.items.size
  }

  /** Whether an item of weight `w` fits now (one heavier than the bound still goes into an empty queue). */
  hasRoomFor(w: number): boolean {
    return this.size === 0 || (this.size < this.maxItems && this.bytes + w <= this.maxBytes)
  }

  /** Adds `a` if there is room now. */
  tryOffer(a: A): boolean {
    const w = this.weigh(a)
    if (!this.hasRoomFor(w)) return false
    this.items.push(a)
    this.bytes += w
    if (this.taker !== undefined) {
      Deferred.unsafeDone(this.taker, Exit.void)
      this.taker = undefined
    }
    return true
  }

  /** Adds `a`, waiting while the queue is full. */
  offer(a: A): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.tryOffer(a) ? Effect.void : Effect.flatMap(Deferred.make<void>(), (room) => {
        this.roomWaiters.push(room)
        return Effect.zipRight(Deferred.await(room), this.offer(a))
      })
    )
  }

  /** Waits for at least one item. */
  readonly nonEmpty: Effect.Effect<void> = Effect.suspend(() =>
    this.size > 0 ? Effect.void : Effect.flatMap(Deferred.make<void>(), (ready) => {
      this.taker = ready
      return Deferred.await(ready)
    })
  )

  /** Up to `maxItems` items weighing at most `maxBytes` (but at least one item when there is one). */
  takeUpTo(maxItems: number, maxBytes: number): Array<A> {
    let n = 0
    let bytes = 0
    while (n < this.items.size && n < maxItems) {
      const w = this.weigh(this.items.at(n))
      if (n > 0 && bytes + w > maxBytes) break
      bytes += w
      n++
    }
    const batch = this.items.take(n)
    this.bytes -= bytes
    const waiters = this.roomWaiters
    this.roomWaiters = []
    for (const w of waiters) Deferred.unsafeDone(w, Exit.void)
    return batch
  }
}
