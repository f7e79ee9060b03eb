/**
 * Sizing one gpu-let: which batch sizes and duty cycle let it serve given rates within every SLO, and how much
 * one function can get out of a part. Pure arithmetic over a latency table; interference enters as a
 * per-function slowdown factor the caller computes from the gpu-let's neighbours.
 *
 * The rules (Gpu-let §2.4, generalised): a gpu-let runs its functions one batch after another in a cycle of
 * `dutyMs`; function i collects `b_i = ⌈r_i·d/1000⌉` requests per cycle and runs them in `L_i = L(b_i)·α_i`.
 * It is feasible when the cycle fits the work (`Σ L_i ≤ d`) and a request that just missed a cycle still makes
 * its SLO (`d + Σ L_i ≤ SLO_j` for every j). One function alone at full speed is the "saturated" case `d = L`.
 * That rule holds for arrivals exactly at the planned rates; with a tail target (`LatencyTable.tail`) the
 * batches must also keep the chosen percentile of latency within every SLO under random arrivals (`tail.ts`).
 */
import type { LatencyModel } from "./latency_model.ts";
import type { NeighbourLoad } from "./interference.ts";
import { functionBusy, largestRateWithin, meetsTail, type QueueClass, type TailTarget } from "./tail.ts";

/** A function as the planner sees it. */
export interface PlannedFunction {
  name: string;
  model: string;
  /** Demanded rate, requests per second. */
  rate: number;
  sloMs: number;
  /** Largest batch the function may run at. */
  maxBatch: number;
  /**
   * CV of its arrivals where it differs from the tail target's: an app stage's calls come in groups (a
   * frame's crops together), which a renewal process of this CV stands for (`app_demand.ts`).
   */
  arrivalCv?: number;
}

const sharedTables = new WeakMap<LatencyModel, Map<string, LatencyTable>>();

/** Latencies per (model, part, batch) for the planner's part set and integer batches, computed once. */
export class LatencyTable {
  private readonly cache = new Map<string, Map<number, Float64Array>>();
  /** Memo of {@link saturated} (tail-aware, it searches a rate per batch). */
  readonly saturations = new Map<string, { rate: number; batch: number; latencyMs: number }>();
  /** Memo of {@link keepsTailAlone}: one function alone at a rate on the grid, at a batch, part and slowdown. */
  readonly aloneChecks = new Map<string, boolean>();

  /**
   * @param model the profile
   * @param ratio multiplier on every latency (the original's "Latency Ratio"; 1 plans on the profile itself)
   * @param tail the latency percentile every gpu-let is sized for (`tail.ts`); undefined: the duty-cycle
   *   rule alone, which holds on averages only
   */
  constructor(readonly model: LatencyModel, readonly ratio = 1, readonly tail?: TailTarget) {}

  /**
   * One table per (profile, ratio, tail target), kept for the profile's lifetime: re-planning (peak
   * searches, the autoscaler) asks the same tail-aware questions again, and the answers are pure.
   */
  static shared(model: LatencyModel, ratio = 1, tail?: TailTarget): LatencyTable {
    let byKey = sharedTables.get(model);
    if (!byKey) sharedTables.set(model, byKey = new Map());
    const key = tail ? `${ratio}|${tail.percentile}|${tail.cv}|${tail.spread}` : `${ratio}`;
    let table = byKey.get(key);
    if (!table) byKey.set(key, table = new LatencyTable(model, ratio, tail));
    return table;
  }

  /** Largest profiled batch of a model. */
  maxBatch(model: string): number {
    const b = this.model.batches(model);
    return b[b.length - 1];
  }

  /** L(model, part, batch) in ms, × ratio. */
  latency(model: string, part: number, batch: number): number {
    let byPart = this.cache.get(model);
    if (!byPart) this.cache.set(model, byPart = new Map());
    let row = byPart.get(part);
    if (!row) {
      const max = this.maxBatch(model);
      row = new Float64Array(max + 1);
      for (let b = 1; b <= max; b++) row[b] = this.model.latency(model, part, b) * this.ratio;
      byPart.set(part, row);
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
 * The most one function can be served on a gpu-let of `part` alone, with the batch that achieves it; rate 0
 * when even batch 1 misses the SLO. Every batch up to the cap is tried (the original's binary search never
 * reached 32). The duty-cycle rule (saturated: `2·L(b)·α ≤ SLO`, rate `1000·b/(L(b)·α)`) bounds it; with a
 * tail target, the rate is the largest whose percentile latency the tail model keeps within the SLO.
 */
export function saturated(
  table: LatencyTable,
  fn: PlannedFunction,
  part: number,
  alpha = 1,
): { rate: number; batch: number; latencyMs: number } {
  const cap = batchCap(table, fn);
  const key = `${fn.model}|${part}|${alpha}|${fn.sloMs}|${cap}|${fn.arrivalCv ?? ""}`;
  const known = table.saturations.get(key);
  if (known) return known;
  let best = { rate: 0, batch: 0, latencyMs: 0 };
  const candidates: { rate: number; batch: number; latencyMs: number }[] = [];
  for (let b = 1; b <= cap; b++) {
    const l = table.latency(fn.model, part, b) * alpha;
    if (2 * l > fn.sloMs) break; // latency grows with the batch
    candidates.push({ rate: (1000 * b) / l, batch: b, latencyMs: l });
  }
  if (!table.tail) {
    for (const c of candidates) if (c.rate > best.rate) best = c;
  } else {
    const tail = table.tail;
    // Branch and bound: the duty-cycle rate bounds each batch's tail-feasible rate, so batches are tried
    // from the highest bound down, and the search ends where the bound drops below the best found.
    candidates.sort((x, y) => y.rate - x.rate);
    for (const { rate, batch: b, latencyMs: l } of candidates) {
      if (rate <= best.rate) break;
      const at = (r: number) => queueClass(table, fn, part, alpha, r, b);
      // The tail-feasible rate falls as the rate rises (more queueing): searched above the best so far.
      const within = largestRateWithin(at, best.rate > 0 ? best.rate : rate * 1e-6, rate, tail);
      if (within === undefined) continue;
      // On the grid of {@link keepsTailAlone}, so that sizing at this rate agrees with it.
      const found = gridFloor(within);
      if (found > best.rate) best = { rate: found, batch: b, latencyMs: l };
    }
  }
  if (table.saturations.size >= 100_000) table.saturations.clear(); // a bound on a long-lived table
  table.saturations.set(key, best);
  return best;
}

/** A function of a gpu-let as the tail model sees it: its rate, batch and latencies there. */
export function queueClass(
  table: LatencyTable,
  fn: Pick<PlannedFunction, "model" | "sloMs" | "arrivalCv">,
  part: number,
  alpha: number,
  rate: number,
  batch: number,
): QueueClass {
  return {
    rate,
    batch,
    sloMs: fn.sloMs,
    latencyMs: (k) => table.latency(fn.model, part, k) * alpha,
    cv: fn.arrivalCv,
  };
}

/**
 * A gpu-let as its neighbours' interference sees it: each function's batch and busy share, from the rate it
 * serves and its batch latency there (`latencyMs`, interference included) with work-conserving batching.
 */
export function neighbourLoad(
  table: LatencyTable,
  part: number,
  functions: readonly { model: string; rate: number; batch: number; latencyMs: number }[],
): NeighbourLoad {
  return {
    part,
    functions: functions.map((f) => {
      const alpha = f.latencyMs / table.latency(f.model, part, f.batch);
      const latencyMs = (k: number) => table.latency(f.model, part, k) * alpha;
      return { model: f.model, batch: f.batch, busy: functionBusy({ rate: f.rate, batch: f.batch, latencyMs }) };
    }),
  };
}

/** A relative tolerance for rate and time comparisons (floating point only; no planning slack). */
export const EPS = 1e-9;

/**
 * Sizes a gpu-let of `part` serving `demands` (function, rate, slowdown α) together, or returns undefined when
 * no duty cycle works. Without a tail target, among feasible cycles it takes the longest: the lowest
 * occupancy, leaving the most room for functions added later and the largest batches. With one, a cycle's
 * batches must also keep every function's percentile latency within its SLO (then the longest such cycle
 * wins: choosing the batches with the least modelled miss instead made neighbours' batches and slowdowns
 * chase each other, and plans that never settled).
 */
export function sizeGpulet(
  table: LatencyTable,
  part: number,
  demands: readonly { fn: PlannedFunction; rate: number; alpha: number }[],
): SizedGpulet | undefined {
  if (demands.length === 0) return undefined;
  const slo = Math.min(...demands.map((d) => d.fn.sloMs));
  const tail = table.tail;
  // Batch sizes are constant between the cycles d = 1000·k/r where some function's batch steps up; each
  // interval ends at such a breakpoint (or at the SLO), and its batches are those needed at its end. With a
  // tail target, batches beyond what an average cycle needs are candidates too: a larger batch drains the
  // queue a burst leaves (the cycle is then the work itself, at most half the SLO).
  const ends = new Set<number>([slo]);
  for (const d of demands) {
    if (!(d.rate > 0)) return undefined;
    const cap = batchCap(table, d.fn);
    for (let k = 1; k <= cap; k++) {
      const at = (1000 * k) / d.rate;
      if (at >= slo && !tail) break;
      ends.add(at);
    }
  }
  // Every cycle that fits on averages, in order of its end; then the longest whose batches keep the tail.
  const candidates: SizedGpulet[] = [];
  for (const end of [...ends].sort((a, b) => a - b)) {
    const assignments: Assignment[] = [];
    let work = 0, tooLarge = false;
    for (const d of demands) {
      const b = Math.max(1, Math.ceil((d.rate * end) / 1000 - EPS));
      if (b > batchCap(table, d.fn)) tooLarge = true; // longer cycles only need larger batches
      const l = table.latency(d.fn.model, part, b) * d.alpha;
      work += l;
      assignments.push({ fn: d.fn, rate: d.rate, batch: b, latencyMs: l });
    }
    if (tooLarge) break;
    // Any d ≤ end works with these batches (1000·b/d ≥ r); the longest one that fits the SLO is best.
    const duty = Math.min(end, slo - work);
    if (2 * work > slo * (1 + EPS)) break; // larger batches only take longer
    if (duty < work * (1 - EPS) || duty <= 0) continue;
    candidates.push({ dutyMs: Math.max(duty, work), assignments });
  }
  // The longest cycle wins, the earliest among equals; with a tail target, the longest that keeps it, so
  // the cycles are checked from the longest down (a stable sort keeps the earliest first among equals).
  const byDuty = candidates.map((c, i) => ({ c, i })).sort((x, y) => y.c.dutyMs - x.c.dutyMs || x.i - y.i);
  if (!tail) return byDuty[0]?.c;
  const checked = new Map<string, boolean>();
  for (const { c } of byDuty) {
    const batches = c.assignments.map((a) => a.batch).join(",");
    let fits = checked.get(batches);
    if (fits === undefined) {
      fits = demands.length === 1
        ? keepsTailAlone(table, demands[0].fn, part, demands[0].alpha, demands[0].rate, c.assignments[0].batch)
        : meetsTail(
          demands.map((d, i) => queueClass(table, d.fn, part, d.alpha, d.rate, c.assignments[i].batch)),
          tail,
        );
      checked.set(batches, fits);
    }
    if (fits) return c;
  }
  return undefined;
}

/** Rates are checked alone on a grid of this ratio, each at the grid point above it (a higher rate only queues more). */
const RATE_GRID = 1.002;

/** The grid point at or below `rate`. */
function gridFloor(rate: number): number {
  return Math.pow(RATE_GRID, Math.floor(Math.log(rate) / Math.log(RATE_GRID) + EPS));
}

/**
 * Whether one function alone on a gpu-let keeps the tail target at `rate`, checked at the grid point just
 * above it and remembered per table: the planner and the autoscaler's re-plans ask about rates that differ by
 * fractions of a percent, and a chain costs up to half a millisecond.
 */
export function keepsTailAlone(
  table: LatencyTable,
  fn: Pick<PlannedFunction, "model" | "sloMs" | "arrivalCv">,
  part: number,
  alpha: number,
  rate: number,
  batch: number,
): boolean {
  const tail = table.tail;
  if (!tail) return true;
  const step = Math.ceil(Math.log(rate) / Math.log(RATE_GRID) - EPS);
  const key = `${fn.model}|${part}|${alpha}|${fn.sloMs}|${batch}|${step}|${fn.arrivalCv ?? ""}`;
  let fits = table.aloneChecks.get(key);
  if (fits === undefined) {
    fits = meetsTail([queueClass(table, fn, part, alpha, Math.pow(RATE_GRID, step), batch)], tail);
    if (table.aloneChecks.size >= 200_000) table.aloneChecks.clear(); // a bound on a long-lived table
    table.aloneChecks.set(key, fits);
  }
  return fits;
}

/** Occupancy of a sized gpu-let: the fraction of its cycle spent computing. */
export function occupancy(g: SizedGpulet): number {
  return g.assignments.reduce((s, a) => s + a.latencyMs, 0) / g.dutyMs;
}
