/** How many of the latest batches the lower bound looks at. */
const RECENT_BATCHES = 64;

/** Batch latency estimates per batch size, seeded by warm-up and updated from every executed batch. */
export class LatencyEstimate {
  private readonly ms = new Map<number, number>();
  /** The fastest seeded batch, until batches are measured (ms). */
  private readonly seedFastest: number;
  /** The latest measured batches of any size (ms), a ring. */
  private readonly recent: number[] = [];
  private recentAt = 0;

  constructor(seed: Record<string, number> = {}, private readonly alpha = 0.2) {
    let fastest = Infinity;
    for (const [b, v] of Object.entries(seed)) {
      this.ms.set(Number(b), v);
      fastest = Math.min(fastest, v);
    }
    this.seedFastest = Number.isFinite(fastest) ? fastest : 0;
  }

  /**
   * What a request needs at the very least (ms): the fastest of the last {@link RECENT_BATCHES} batches of
   * any size (the seed's fastest before any; 0 with no data). A recent window, not all time: after a lasting
   * slowdown the old best would promise too much.
   */
  lowerBoundMs(): number {
    if (this.recent.length === 0) return this.seedFastest;
    let least = Infinity;
    for (const v of this.recent) least = Math.min(least, v);
    return least;
  }

  /**
   * Records a measured batch latency (exponentially weighted). A batch size seen for the first time starts
   * from what its neighbours predict, so one outlier (the core taken away for a moment) does not become
   * its estimate.
   */
  observe(batch: number, ms: number): void {
    if (this.recent.length < RECENT_BATCHES) this.recent.push(ms);
    else this.recent[this.recentAt] = ms;
    this.recentAt = (this.recentAt + 1) % RECENT_BATCHES;
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
