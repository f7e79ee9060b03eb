/** Summary statistics over measured latencies (pure). */

/** The `q`-quantile (nearest rank) of ascending `sorted` values; null when there are none. */
export function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
