/** Summary statistics over measured latencies (pure). */

/** The `q`-quantile (nearest rank) of ascending `sorted` values; null when there are none. */
export function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Count, median, p99 and the share within `sloMs` of ascending latencies (ms; NaN and 1 when there are none). */
export function latencyStats(sorted: readonly number[], sloMs: number) {
  return {
    n: sorted.length,
    p50Ms: percentile(sorted, 0.5) ?? NaN,
    p99Ms: percentile(sorted, 0.99) ?? NaN,
    within: sorted.length ? sorted.filter((x) => x <= sloMs).length / sorted.length : 1,
  };
}
