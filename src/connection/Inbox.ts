import { Fifo } from "../internal/Fifo.ts"

/**
 * A connection's incoming frames: bounded, FIFO. Plain fields rather than an Effect `Queue`: every
 * connection has one, and thousands of sessions are held at once.
 */
export class Inbox<A> {
  private readonly items = new Fifo<A>()

  constructor(private readonly capacity: number) {}

  /** False when full. */
  offer(item: A): boolean {
    if (this.items.size >= this.capacity) return false
    this.items.push(item)
    return true
  }

  get size(): number {
    return this.items.size
  }

  /** The next item, if any. */
  poll(): A | undefined {
    return this.items.shift()
  }

  clear(): void {
    this.items.clear()
  }
}
