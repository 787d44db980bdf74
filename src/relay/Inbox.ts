import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/**
 * A session's incoming frames: bounded, FIFO, one reader. Plain fields rather than an Effect `Queue`:
 * every connection has one, and thousands of sessions are held at once.
 */
export class Inbox<A> {
  private items: Array<A> = []
  private head = 0
  private reader: Deferred.Deferred<void> | undefined

  constructor(private readonly capacity: number) {}

  /** False when full. */
  offer(item: A): boolean {
    if (this.items.length - this.head >= this.capacity) return false
    this.items.push(item)
    if (this.reader !== undefined) {
      Deferred.unsafeDone(this.reader, Exit.void)
      this.reader = undefined
    }
    return true
  }

  /** The next item, waiting for one. */
  readonly take: Effect.Effect<A> = Effect.suspend(() => {
    if (this.head < this.items.length) {
      const item = this.items[this.head]!
      this.items[this.head++] = undefined as A
      if (this.head === this.items.length) {
        this.items = []
        this.head = 0
      } else if (this.head >= 64 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head)
        this.head = 0
      }
      return Effect.succeed(item)
    }
    return Effect.flatMap(Deferred.make<void>(), (ready) => {
      this.reader = ready
      return Effect.zipRight(Deferred.await(ready), this.take)
    })
  })

  clear(): void {
    this.items = []
    this.head = 0
  }
}
