/**
 * Turning a function's demanded rate into gpu-lets to place (Gpu-let §2.5-2.6): saturated gpu-lets of its
 * most effective part plus one residue gpu-let as small as serves the rest; residues of different functions
 * then time-share one gpu-let where that takes fewer % of a GPU (§2.7 step 6, done before placement).
 */
import { type Demand, gpuletMemory, type GpuletState, pairKey, sizeMemo, type SizingContext } from "./layout.ts";
import { EPS, type PlannedFunction, saturated } from "./sizing.ts";

/** How the unit part of a function is chosen. */
export type UnitRule =
  /** Most throughput per % of a GPU. */
  | "efficiency"
  /** The original's knee of marginal throughput per % (a step must gain ≥ 5 %); includes 100 % (a fix). */
  | "knee"
  /** The greedy baseline: the smallest part that serves all that remains, else a whole GPU. */
  | "smallest";

/** One gpu-let to place, and whether it is a residue (not saturated, may time-share). */
export interface Item {
  gpulet: GpuletState;
  residue: boolean;
}

/** Decomposition knobs. */
export interface DecomposeOptions {
  parts: readonly number[];
  unitRule: UnitRule;
  /** Size with the slowdown of a copy of the function in the rest of the GPU (else none, fixed on placement). */
  expectInterference: boolean;
}

/** The slowdown assumed before a function's neighbours are known. */
export function expectedSlowdown(ctx: SizingContext, fn: PlannedFunction, part: number, expect: boolean): number {
  if (!expect || !ctx.interference || part >= 100) return 1;
  const key = pairKey(fn.model, part, 8, fn.model, 100 - part, 8);
  let s = ctx.slowdowns.get(key);
  if (s === undefined) {
    s = ctx.interference.slowdownAt(fn.model, part, 8, fn.model, 100 - part, 8);
    ctx.slowdowns.set(key, s);
  }
  return s;
}

/** The unit part of a function under a rule, with its saturated rate there; undefined if no part meets the SLO. */
export function unitPart(
  ctx: SizingContext,
  fn: PlannedFunction,
  opts: DecomposeOptions,
): { part: number; rate: number } | undefined {
  if (!ctx.units) return findUnitPart(ctx, fn, opts);
  let byRule = ctx.units.get(fn);
  if (!byRule) ctx.units.set(fn, byRule = new Map());
  const key = `${opts.unitRule}:${opts.expectInterference}:${opts.parts.join(",")}`;
  let unit = byRule.get(key);
  if (unit === undefined) byRule.set(key, unit = findUnitPart(ctx, fn, opts) ?? null);
  return unit ?? undefined;
}

function findUnitPart(
  ctx: SizingContext,
  fn: PlannedFunction,
  opts: DecomposeOptions,
): { part: number; rate: number } | undefined {
  const caps = opts.parts.map((part) => ({
    part,
    rate: saturated(ctx.table, fn, part, expectedSlowdown(ctx, fn, part, opts.expectInterference)).rate,
  })).filter((c) => c.rate > 0);
  if (caps.length === 0) return undefined;
  if (opts.unitRule === "knee") {
    // Ascending parts; the largest marginal gain per % among steps that gain at least 5 %.
    let best = caps[0];
    let bestGain = 0;
    for (let i = 1; i < caps.length; i++) {
      const [lo, hi] = [caps[i - 1], caps[i]];
      if (hi.rate / lo.rate < 1.05) continue;
      const gain = (hi.rate - lo.rate) / (hi.part - lo.part);
      if (gain > bestGain) [best, bestGain] = [hi, gain];
    }
    return best;
  }
  // Efficiency; on ties the larger part (fewer gpu-lets, fewer neighbours).
  return caps.reduce((a, c) => (c.rate / c.part >= (a.rate / a.part) * (1 - 1e-9) ? c : a));
}

/** The smallest part that serves `rate` of `fn` on a gpu-let of its own, or undefined. */
export function smallestPartFor(
  ctx: SizingContext,
  fn: PlannedFunction,
  rate: number,
  opts: DecomposeOptions,
): number | undefined {
  for (const part of opts.parts) {
    const alpha = expectedSlowdown(ctx, fn, part, opts.expectInterference);
    if (sizeMemo(ctx, part, [{ fn, rate, alpha }])) return part;
  }
  return undefined;
}

/** Gpu-lets for one function's rate, and the rate no part can serve (its SLO is too tight). */
export function decompose(
  ctx: SizingContext,
  demand: Demand,
  opts: DecomposeOptions,
): { items: Item[]; unservable: number } {
  const { fn } = demand;
  const items: Item[] = [];
  let rest = demand.rate;
  const one = (part: number, rate: number, residue: boolean) =>
    items.push({ gpulet: { part, demands: [{ fn, rate }] }, residue });
  if (opts.unitRule === "smallest") {
    const whole = saturated(ctx.table, fn, 100, 1).rate;
    while (rest > EPS * demand.rate) {
      const part = smallestPartFor(ctx, fn, rest, opts);
      if (part !== undefined) {
        one(part, rest, part < 100 || rest < whole);
        return { items, unservable: 0 };
      }
      if (whole <= 0) break;
      one(100, Math.min(whole, rest), false);
      rest -= whole;
    }
    return { items, unservable: Math.max(0, rest) };
  }
  const unit = unitPart(ctx, fn, opts);
  if (!unit) return { items, unservable: rest };
  const n = Math.floor((rest / unit.rate) * (1 + 1e-12));
  for (let i = 0; i < n; i++) one(unit.part, unit.rate, false);
  rest -= n * unit.rate;
  if (rest > EPS * demand.rate) {
    const part = smallestPartFor(ctx, fn, rest, opts) ?? unit.part;
    one(part, rest, true);
  }
  return { items, unservable: 0 };
}

/**
 * Time-sharing of residues: each residue joins the group (≤ maxFunctionsPerGpulet functions) where the
 * merged gpu-let saves the most %, or starts its own. A merged gpu-let has the smallest part that serves all
 * its functions in one duty cycle.
 */
export function mergeResidues(ctx: SizingContext, items: Item[], opts: DecomposeOptions): Item[] {
  if (ctx.maxFunctionsPerGpulet < 2) return items;
  const fixed = items.filter((i) => !i.residue);
  const groups: Item[] = [];
  for (const r of items.filter((i) => i.residue).sort((a, b) => b.gpulet.part - a.gpulet.part)) {
    let best: { group: Item; part: number; saving: number } | undefined;
    for (const group of groups) {
      const g = group.gpulet;
      if (g.demands.length + r.gpulet.demands.length > ctx.maxFunctionsPerGpulet) continue;
      if (g.demands.some((d) => r.gpulet.demands.some((e) => e.fn === d.fn))) continue;
      const demands = [...g.demands, ...r.gpulet.demands];
      // Each function of a gpu-let is a process with its memory: the merged one must still fit a GPU.
      if (ctx.memory && gpuletMemory({ part: g.part, demands }, ctx.memory) > ctx.memory.deviceMb) continue;
      for (const part of opts.parts) {
        if (part >= g.part + r.gpulet.part) break;
        const withAlpha = demands.map((d) => ({
          ...d,
          alpha: expectedSlowdown(ctx, d.fn, part, opts.expectInterference),
        }));
        if (sizeMemo(ctx, part, withAlpha)) {
          const saving = g.part + r.gpulet.part - part;
          if (!best || saving > best.saving) best = { group, part, saving };
          break;
        }
      }
    }
    if (best) {
      best.group.gpulet = { part: best.part, demands: [...best.group.gpulet.demands, ...r.gpulet.demands] };
    } else groups.push({ gpulet: { part: r.gpulet.part, demands: [...r.gpulet.demands] }, residue: true });
  }
  return [...fixed, ...groups];
}
