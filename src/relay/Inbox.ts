/**
 * A session's incoming frames: bounded, FIFO. Plain fields rather than an Effect `Queue`: every
 * connection has one, and thousands of sessions are held at once.
 */
export class Inbox<A> {
  private items: Array<A> = []
  private head = 0

  constructor(private readonly capacity: number) {}

  /** False when full. */
  offer(item: A): boolean {
    if (this.items.length - this.head >= this.capacity) return false
    this.items.push(item)
    return true
  }

  get size(): number {
    return this.items.length - this.head
  }

  /** The next item, if any. */
  poll(): A | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]!
    this.items[this.head++] = undefined as A
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  clear(): void {
    this.items = []
    this.head = 0
  }
}
