/**
 * The Merkle levels of the batches proven lately, least recently used first out. Proofs of one batch
 * come in bursts (every member checking its message), and without it each one read the batch's leaves
 * and hashed its whole tree again. A batch is final once stored, so an entry never goes stale.
 */
export class ProofCache<A> {
  private readonly entries = new Map<string, A>()

  constructor(readonly capacity: number) {}

  get(batchId: string): A | undefined {
    const hit = this.entries.get(batchId)
    if (hit !== undefined) {
      this.entries.delete(batchId)
      this.entries.set(batchId, hit)
    }
    return hit
  }

  set(batchId: string, value: A): void {
    this.entries.delete(batchId)
    this.entries.set(batchId, value)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }

  get size(): number {
    return this.entries.size
  }
}
