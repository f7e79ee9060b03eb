/**
 * The static layout used until the gpu-let planner lands: one gpu-let per function, its batch size chosen
 * from measured latencies and the SLO. Pure functions; the controller does the I/O.
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

/**
 * Picks `count` cores for a new gpu-let: the least used ones (fewest gpu-lets already pinned there), lowest
 * index first on ties. `usage[i]` is the number of gpu-lets on core i.
 */
export function pickCores(usage: readonly number[], count: number): number[] {
  const order = usage.map((u, i) => ({ u, i })).sort((a, b) => a.u - b.u || a.i - b.i);
  return order.slice(0, Math.min(count, usage.length)).map((o) => o.i).sort((a, b) => a - b);
}
