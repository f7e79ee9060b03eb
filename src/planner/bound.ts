/**
 * The fractional upper bound: every function served at its best throughput per % of a GPU (any profiled
 * part, saturated, no interference), GPUs divisible without packing loss. No real plan can serve more.
 */
import { type LatencyTable, type PlannedFunction, saturated } from "./sizing.ts";

/** Best saturated throughput per % of a GPU of a function (req/s per %); 0 if no part meets its SLO. */
export function bestRatePerPart(table: LatencyTable, fn: PlannedFunction, parts: readonly number[]): number {
  return Math.max(0, ...parts.map((p) => saturated(table, fn, p, 1).rate / p));
}

/** % of one GPU the demand needs at best (Infinity if some function cannot meet its SLO at all). */
export function boundPart(
  table: LatencyTable,
  functions: readonly PlannedFunction[],
  parts: readonly number[],
): number {
  let total = 0;
  for (const fn of functions) {
    if (fn.rate <= 0) continue;
    const best = bestRatePerPart(table, fn, parts);
    if (best <= 0) return Infinity;
    total += fn.rate / best;
  }
  return total;
}

/** The largest common multiplier of every rate that `gpus` GPUs could serve under the bound. */
export function boundScale(
  table: LatencyTable,
  functions: readonly PlannedFunction[],
  parts: readonly number[],
  gpus: number,
): number {
  const need = boundPart(table, functions, parts);
  return need === 0 ? Infinity : (100 * gpus) / need;
}
