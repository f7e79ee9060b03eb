/** Batch latency estimates per batch size, seeded by warm-up and updated from every executed batch. */
export class LatencyEstimate {
  private readonly ms = new Map<number, number>();
  /** The fastest batch of any size measured so far (ms). */
  private fastest = Infinity;

  constructor(seed: Record<string, number> = {}, private readonly alpha = 0.2) {
    for (const [b, v] of Object.entries(seed)) {
      this.ms.set(Number(b), v);
      this.fastest = Math.min(this.fastest, v);
    }
  }

  /**
   * A lower bound on any batch's latency: the fastest batch measured (0 with no data). What a request
   * needs at the very least: one below it cannot be saved by any batch.
   */
  lowerBoundMs(): number {
    return Number.isFinite(this.fastest) ? this.fastest : 0;
  }

  /**
   * Records a measured batch latency (exponentially weighted). A batch size seen for the first time starts
   * from what its neighbours predict, so one outlier (the core taken away for a moment) does not become
   * its estimate.
   */
  observe(batch: number, ms: number): void {
    this.fastest = Math.min(this.fastest, ms);
    const old = this.ms.get(batch) ?? (this.ms.size > 0 ? this.estimate(batch) : undefined);
    this.ms.set(batch, old === undefined ? ms : old + this.alpha * (ms - old));
  }

  /** Estimated latency of a batch: measured, else interpolated between neighbours, else scaled linearly. */
  estimate(batch: number): number {
    const exact = this.ms.get(batch);
    if (exact !== undefined) return exact;
    if (this.ms.size === 0) return 0;
    let lo: [number, number] | undefined;
    let hi: [number, number] | undefined;
    for (const [b, v] of this.ms) {
      if (b < batch && (!lo || b > lo[0])) lo = [b, v];
      if (b > batch && (!hi || b < hi[0])) hi = [b, v];
    }
    if (lo && hi) return lo[1] + ((hi[1] - lo[1]) * (batch - lo[0])) / (hi[0] - lo[0]);
    if (lo) return (lo[1] * batch) / lo[0];
    return hi![1];
  }

  /** The known points, for reporting. */
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.ms].sort((a, b) => a[0] - b[0]));
  }
}
