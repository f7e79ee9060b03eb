/**
 * Batch sizes from measured latencies, where no plan sizes them: the batches a gpu-let is warmed at, and the
 * largest batch a fixed gpu-let (or a planned one in a burst) takes. Pure functions; the fleet does the I/O.
 */

/** Batch sizes a worker is warmed at: powers of two up to `maxBatch`, and `maxBatch` itself. */
export function warmBatches(maxBatch: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) out.push(b);
  out.push(maxBatch);
  return out;
}

/**
 * The largest measured batch size `b ≤ maxBatch` with `2·L(b) ≤ sloMs` (a request may wait for one batch to
 * finish, then run in the next: the Gpu-let saturated rule), or 1 when even batch 1 is too slow.
 */
export function chooseBatch(latencyMs: Record<string, number>, sloMs: number, maxBatch: number): number {
  let best = 1;
  for (const [b, ms] of Object.entries(latencyMs)) {
    const n = Number(b);
    if (n <= maxBatch && 2 * ms <= sloMs && n > best) best = n;
  }
  return best;
}
