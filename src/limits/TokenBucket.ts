/** A token bucket read against a clock the caller passes in, so TestClock drives refills. */
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(
    readonly capacity: number,
    readonly perSecond: number,
    now: number
  ) {
    this.tokens = capacity
    this.at = now
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.perSecond)
      this.at = now
    }
  }

  tryTake(now: number, n = 1): boolean {
    this.refill(now)
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  /** Full again: the bucket holds no state worth keeping. */
  isFull(now: number): boolean {
    this.refill(now)
    return this.tokens >= this.capacity
  }
}
