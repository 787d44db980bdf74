/**
 * A token bucket read against a clock the caller passes in, so TestClock drives refills. `charge` may
 * take it into debt, for costs known only after the fact (a read's rows): the refill pays it back.
 */
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

  /** Whether anything is left: a cost charged afterwards may then go past it. */
  inCredit(now: number): boolean {
    this.refill(now)
    return this.tokens > 0
  }

  /** Takes `cost` whatever is left, into debt if need be. */
  charge(now: number, cost: number): void {
    this.refill(now)
    this.tokens -= cost
  }

  /** Full again: the bucket holds no state worth keeping. */
  isFull(now: number): boolean {
    this.refill(now)
    return this.tokens >= this.capacity
  }
}
