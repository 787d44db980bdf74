/**
 * An array read from the front without `shift` (which moves every item): a head index, and the read
 * part dropped once it is most of the array. The session's inbox and outbox and `BatchQueue` use it.
 */
export class Fifo<A> {
  private items: Array<A> = []
  private head = 0

  get size(): number {
    return this.items.length - this.head
  }

  push(item: A): void {
    this.items.push(item)
  }

  /** The `i`-th item from the front (0 is the next one); `i` must be below `size`. */
  at(i: number): A {
    return this.items[this.head + i]!
  }

  shift(): A | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]!
    this.items[this.head++] = undefined as A
    this.compact()
    return item
  }

  /** Removes and returns the first `n` items. */
  take(n: number): Array<A> {
    const taken = this.items.slice(this.head, this.head + n)
    this.head += taken.length
    this.compact()
    return taken
  }

  /** Removes and returns every item. */
  clear(): Array<A> {
    const rest = this.items.slice(this.head)
    this.items = []
    this.head = 0
    return rest
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}
