/**
 * The incremental mode (the autoscaler's step): a running plan and new demand in, a plan that serves the new
 * demand while changing as few gpu-lets as possible. Every gpu-let that is changed means starting a new worker
 * and draining an old one, so the running layout is kept where it still works:
 *
 * 1. functions that need less give up rate, smallest shares first; a gpu-let left with nothing is stopped;
 * 2. every GPU is re-sized against its (possibly new) neighbours; whatever interference sheds becomes pending;
 * 3. growth goes first to the gpu-lets the function already has, as far as they carry it;
 * 4. pending demand (shed plus growth) is decomposed and placed into the running layout with the gpulet engine,
 *    free % and empty GPUs first, new GPUs only up to the limit;
 * 5. with `compact`, GPUs are emptied one at a time (least used first) when everything they serve fits on the
 *    others without loss — scaling in.
 *
 * A plan from scratch is a candidate as well and wins when it needs fewer GPUs or serves more. GPU ids are kept: a GPU emptied in the middle leaves a gap rather than renumbering the others.
 */
import type { GpuState } from "./layout.ts";
import { cloneGpu, mergeDemands, resizeGpu, type SizingContext } from "./layout.ts";
import { type Plan, toPlan, totalPart } from "./plan.ts";
import { gpuletChanges } from "./plan_diff.ts";
import {
  cloneLayout,
  compact,
  DEFAULT_OPTIONS,
  partSet,
  placeDemands,
  type PlannerOptions,
  type PlanProblem,
  planWithEngine,
  sizingContext,
  strategiesOf,
} from "./planner.ts";
import { EPS, type PlannedFunction } from "./sizing.ts";

/** Incremental knobs. */
export interface ReplanOptions extends PlannerOptions {
  /** Try to empty GPUs whose load fits elsewhere (scale in). */
  compact: boolean;
}

/** Defaults: the planner's, with compaction on. */
export const DEFAULT_REPLAN_OPTIONS: ReplanOptions = { ...DEFAULT_OPTIONS, compact: true };

/**
 * The layout of a plan, for the functions of `functions` (by name; others are dropped). Position i holds GPU
 * id i; ids missing from the plan are empty GPUs.
 */
export function layoutOf(plan: Plan, functions: readonly PlannedFunction[]): GpuState[] {
  const byName = new Map(functions.map((f) => [f.name, f]));
  const size = Math.max(0, ...plan.gpus.map((g) => g.id + 1));
  const layout: GpuState[] = Array.from({ length: size }, () => ({ gpulets: [] }));
  for (const gpu of plan.gpus) {
    layout[gpu.id].gpulets = gpu.gpulets.map((g) => ({
      part: g.part,
      demands: g.functions.flatMap((f) => {
        const fn = byName.get(f.name);
        return fn && f.rate > 0 ? [{ fn, rate: f.rate }] : [];
      }),
    })).filter((g) => g.demands.length > 0);
  }
  return layout;
}

/** Takes `surplus` req/s of `fn` out of the layout, from its smallest shares first. */
function trim(layout: GpuState[], fn: PlannedFunction, surplus: number): void {
  const shares = layout.flatMap((gpu) =>
    gpu.gpulets.flatMap((g) => g.demands.filter((d) => d.fn === fn).map((d) => ({ gpu, g, d })))
  ).sort((a, b) => a.d.rate - b.d.rate);
  for (const { gpu, g, d } of shares) {
    if (surplus <= EPS * fn.rate) break;
    const cut = Math.min(d.rate, surplus);
    d.rate -= cut;
    surplus -= cut;
    if (d.rate <= EPS * Math.max(1, fn.rate)) g.demands = g.demands.filter((x) => x !== d);
    gpu.gpulets = gpu.gpulets.filter((x) => x.demands.length > 0);
  }
}

/**
 * Raises `fn`'s rate on the gpu-lets it already has by up to `more` req/s in total, as far as each GPU still
 * sizes without shedding anything (bisection on the added rate): growth that fits where the function runs
 * needs no new worker.
 */
function absorb(ctx: SizingContext, layout: GpuState[], fn: PlannedFunction, more: number): void {
  for (let i = 0; i < layout.length && more > EPS * fn.rate; i++) {
    for (let j = 0; j < layout[i].gpulets.length && more > EPS * fn.rate; j++) {
      const k = layout[i].gpulets[j].demands.findIndex((d) => d.fn === fn);
      if (k < 0) continue;
      const withExtra = (extra: number): GpuState | undefined => {
        const trial = cloneGpu(layout[i]);
        trial.gpulets[j].demands[k].rate += extra;
        return resizeGpu(ctx, trial).length === 0 ? trial : undefined;
      };
      let fit = withExtra(more);
      let added = more;
      if (!fit) {
        let [lo, hi] = [0, more];
        for (let step = 0; step < 20; step++) {
          const mid = (lo + hi) / 2;
          const trial = withExtra(mid);
          if (trial) [lo, fit] = [mid, trial];
          else hi = mid;
        }
        added = lo;
      }
      if (fit && added > 0) {
        layout[i] = fit;
        more -= added;
      }
    }
  }
}

/** Served rate per function in a layout. */
function served(layout: readonly GpuState[]): Map<PlannedFunction, number> {
  const out = new Map<PlannedFunction, number>();
  for (const gpu of layout) {
    for (const g of gpu.gpulets) for (const d of g.demands) out.set(d.fn, (out.get(d.fn) ?? 0) + d.rate);
  }
  return out;
}

/**
 * Re-plans `current` for the demand in `problem` (functions by name: new ones are added, missing ones
 * removed), changing as little of it as possible. Strategies are tried as in the gpulet policy; the plan with
 * the least unserved demand, then the fewest GPUs, then the fewest gpu-lets started or stopped, then the
 * fewest % wins.
 */
export function replan(problem: PlanProblem, current: Plan, options: ReplanOptions = DEFAULT_REPLAN_OPTIONS): Plan {
  if (!problem.interference) throw new Error("the incremental mode needs an interference model (a pairs file)");
  const parts = partSet(problem, options);
  const ctx = sizingContext(problem, options, true);
  const base = layoutOf(current, problem.functions);
  const before = served(base);
  for (const fn of problem.functions) {
    const surplus = (before.get(fn) ?? 0) - fn.rate;
    if (surplus > 0) trim(base, fn, surplus);
  }
  let shed = base.flatMap((gpu) => resizeGpu(ctx, gpu));
  for (const fn of problem.functions) {
    const more = fn.rate - (served(base).get(fn) ?? 0);
    if (more > EPS * fn.rate) absorb(ctx, base, fn, more);
  }
  const after = served(base);
  const growth = problem.functions.map((fn) => ({ fn, rate: fn.rate - (after.get(fn) ?? 0) }));
  // Shares below a millionth of a function's rate are the plan JSON's rounding, not demand to place.
  shed = mergeDemands([...shed, ...growth]).filter((d) => d.rate > 1e-6 * Math.max(1, d.fn.rate));
  const candidates = strategiesOf("gpulet").map((strategy) => {
    let layout = cloneLayout(base);
    placeDemands(ctx, layout, Math.max(problem.gpus, layout.length), parts, strategy, shed, options.rounds);
    if (options.compact) layout = compact(ctx, layout, parts, strategy);
    return toPlan("gpulet", problem.device, problem.functions, layout, ctx.table.tail);
  });
  // A plan from scratch competes too: it wins when it needs fewer GPUs or serves more, whatever it moves.
  candidates.push(planWithEngine(problem, "gpulet", options));
  let best: { plan: Plan; rank: number[] } | undefined;
  for (const plan of candidates) {
    const rank = [unservedShare(plan, problem.functions), plan.gpusUsed, gpuletChanges(current, plan), totalPart(plan)];
    if (!best || precedes(rank, best.rank)) best = { plan, rank };
  }
  return best!.plan;
}

/** Lexicographic order of ranks. */
function precedes(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-9) return a[i] < b[i];
  return false;
}

/** Unserved demand as a sum of fractions of each function's rate. */
function unservedShare(p: Plan, functions: readonly PlannedFunction[]): number {
  return p.unserved.reduce((s, u) => s + u.rate / (functions.find((f) => f.name === u.name)?.rate ?? 1), 0);
}
