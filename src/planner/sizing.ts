/**
 * Sizing one gpu-let: which batch sizes and duty cycle let it serve given rates within every SLO, and how much
 * one function can get out of a part. Pure arithmetic over a latency table; interference enters as a
 * per-function slowdown factor the caller computes from the gpu-let's neighbours.
 *
 * The rules (Gpu-let §2.4, generalised): a gpu-let runs its functions one batch after another in a cycle of
 * `dutyMs`; function i collects `b_i = ⌈r_i·d/1000⌉` requests per cycle and runs them in `L_i = L(b_i)·α_i`.
 * It is feasible when the cycle fits the work (`Σ L_i ≤ d`) and a request that just missed a cycle still makes
 * its SLO (`d + Σ L_i ≤ SLO_j` for every j). One function alone at full speed is the "saturated" case `d = L`.
 */
import type { LatencyModel } from "./latency_model.ts";

/** A function as the planner sees it. */
export interface PlannedFunction {
  name: string;
  model: string;
  /** Demanded rate, requests per second. */
  rate: number;
  sloMs: number;
  /** Largest batch the function may run at. */
  maxBatch: number;
}

/** Latencies per (model, part, batch) for the planner's part set and integer batches, computed once. */
export class LatencyTable {
  private readonly cache = new Map<string, Float64Array>();

  /**
   * @param model the profile
   * @param ratio multiplier on every latency (the original's "Latency Ratio"; 1 plans on the profile itself)
   */
  constructor(readonly model: LatencyModel, readonly ratio = 1) {}

  /** Largest profiled batch of a model. */
  maxBatch(model: string): number {
    const b = this.model.batches(model);
    return b[b.length - 1];
  }

  /** L(model, part, batch) in ms, × ratio. */
  latency(model: string, part: number, batch: number): number {
    const key = `${model}@${part}`;
    let row = this.cache.get(key);
    if (!row) {
      const max = this.maxBatch(model);
      row = new Float64Array(max + 1);
      for (let b = 1; b <= max; b++) row[b] = this.model.latency(model, part, b) * this.ratio;
      this.cache.set(key, row);
    }
    return row[batch];
  }
}

/** One function's share of a gpu-let. */
export interface Assignment {
  fn: PlannedFunction;
  /** Rate this gpu-let serves for the function (req/s). */
  rate: number;
  batch: number;
  /** Batch latency here, interference included (ms). */
  latencyMs: number;
}

/** A sized gpu-let: a common duty cycle and each function's batch. */
export interface SizedGpulet {
  dutyMs: number;
  assignments: Assignment[];
}

/** Batch cap of a function: its own limit and the profile's largest batch. */
export function batchCap(table: LatencyTable, fn: PlannedFunction): number {
  return Math.min(fn.maxBatch, table.maxBatch(fn.model));
}

/**
 * The most one function can be served on a gpu-let of `part` alone (saturated: `2·L(b)·α ≤ SLO`, rate
 * `1000·b/(L(b)·α)`), with the batch that achieves it; rate 0 when even batch 1 misses the SLO. Every batch up
 * to the cap is tried (the original's binary search never reached 32).
 */
export function saturated(
  table: LatencyTable,
  fn: PlannedFunction,
  part: number,
  alpha = 1,
): { rate: number; batch: number; latencyMs: number } {
  let best = { rate: 0, batch: 0, latencyMs: 0 };
  const cap = batchCap(table, fn);
  for (let b = 1; b <= cap; b++) {
    const l = table.latency(fn.model, part, b) * alpha;
    if (2 * l > fn.sloMs) break; // latency grows with the batch
    const rate = (1000 * b) / l;
    if (rate > best.rate) best = { rate, batch: b, latencyMs: l };
  }
  return best;
}

/** A relative tolerance for rate and time comparisons (floating point only; no planning slack). */
export const EPS = 1e-9;

/**
 * Sizes a gpu-let of `part` serving `demands` (function, rate, slowdown α) together, or returns undefined when
 * no duty cycle works. Among feasible cycles it takes the longest: the lowest occupancy, leaving the most
 * room for functions added later and the largest batches.
 */
export function sizeGpulet(
  table: LatencyTable,
  part: number,
  demands: readonly { fn: PlannedFunction; rate: number; alpha: number }[],
): SizedGpulet | undefined {
  if (demands.length === 0) return undefined;
  const slo = Math.min(...demands.map((d) => d.fn.sloMs));
  // Batch sizes are constant between the cycles d = 1000·k/r where some function's batch steps up; each
  // interval ends at such a breakpoint (or at the SLO), and its batches are those needed at its end.
  const ends = new Set<number>([slo]);
  for (const d of demands) {
    if (!(d.rate > 0)) return undefined;
    const cap = batchCap(table, d.fn);
    for (let k = 1; k <= cap; k++) {
      const at = (1000 * k) / d.rate;
      if (at >= slo) break;
      ends.add(at);
    }
  }
  let best: SizedGpulet | undefined;
  for (const end of [...ends].sort((a, b) => a - b)) {
    const assignments: Assignment[] = [];
    let work = 0;
    for (const d of demands) {
      const b = Math.max(1, Math.ceil((d.rate * end) / 1000 - EPS));
      if (b > batchCap(table, d.fn)) return best; // longer cycles only need larger batches
      const l = table.latency(d.fn.model, part, b) * d.alpha;
      work += l;
      assignments.push({ fn: d.fn, rate: d.rate, batch: b, latencyMs: l });
    }
    // Any d ≤ end works with these batches (1000·b/d ≥ r); the longest one that fits the SLO is best.
    const duty = Math.min(end, slo - work);
    if (duty < work * (1 - EPS) || duty <= 0) continue;
    if (!best || duty > best.dutyMs) best = { dutyMs: Math.max(duty, work), assignments };
  }
  return best;
}

/** Occupancy of a sized gpu-let: the fraction of its cycle spent computing. */
export function occupancy(g: SizedGpulet): number {
  return g.assignments.reduce((s, a) => s + a.latencyMs, 0) / g.dutyMs;
}
