/**
 * The `ideal` policy (the original's full-search mode, §2.11): every way to split each GPU into at most two
 * gpu-lets from the part set (whole, or p + (100 − p)), as multisets over the GPUs; on each fixed layout the
 * functions are assigned slot by slot (largest capacity first, the smallest slot that takes a remainder,
 * time-sharing of what is left), sized with interference. The best plan over all layouts wins. Exponential in
 * the GPU count: meant for ≤ 4 GPUs.
 */
import { expectedSlowdown } from "./decompose.ts";
import { cloneGpu, type GpuState, mergeDemands, resizeGpu, type SizingContext } from "./layout.ts";
import { type Plan, toPlan } from "./plan.ts";
import {
  betterPlan,
  DEFAULT_OPTIONS,
  partSet,
  type PlannerOptions,
  type PlanProblem,
  sizingContext,
} from "./planner.ts";
import { EPS, type PlannedFunction, saturated, sizeGpulet } from "./sizing.ts";

/** Most GPUs `ideal` searches (the layout count grows as a multiset of splits over GPUs). */
export const IDEAL_MAX_GPUS = 6;

/** The per-GPU splits: [100] and [p, 100 − p] for p ≥ 50 with both in the part set. */
export function gpuSplits(parts: readonly number[]): number[][] {
  const out: number[][] = parts.includes(100) ? [[100]] : [];
  for (const p of parts) if (p >= 50 && p < 100 && parts.includes(100 - p)) out.push([p, 100 - p]);
  return out;
}

/** Multisets of `k` elements from `n` kinds, as non-decreasing index lists. */
export function* multisets(n: number, k: number, from = 0): Generator<number[]> {
  if (k === 0) {
    yield [];
    return;
  }
  for (let i = from; i < n; i++) for (const rest of multisets(n, k - 1, i)) yield [i, ...rest];
}

/** Assigns functions to the fixed slots of one layout; returns the sized layout. */
function fillLayout(ctx: SizingContext, splits: number[][], functions: readonly PlannedFunction[]): GpuState[] {
  const gpus: GpuState[] = splits.map((parts) => ({ gpulets: parts.map((part) => ({ part, demands: [] })) }));
  const slots = gpus.flatMap((gpu) => gpu.gpulets);
  // Tightest functions first (the original's rate × SLO order), so they get the slots they fit best.
  const order = [...functions].filter((f) => f.rate > 0).sort((a, b) => a.rate * a.sloMs - b.rate * b.sloMs);
  const leftovers: { fn: PlannedFunction; rate: number }[] = [];
  for (const fn of order) {
    let rest = fn.rate;
    while (rest > EPS * fn.rate) {
      const free = slots.filter((s) => s.demands.length === 0);
      const alone = (part: number) => ({ fn, rate: rest, alpha: expectedSlowdown(ctx, fn, part, true) });
      const whole = free.filter((s) => sizeGpulet(ctx.table, s.part, [alone(s.part)])).sort((a, b) => a.part - b.part);
      if (whole.length > 0) {
        whole[0].demands = [{ fn, rate: rest }];
        rest = 0;
        break;
      }
      const caps = free.map((s) => ({ s, rate: saturated(ctx.table, fn, s.part, alone(s.part).alpha).rate }))
        .filter((c) => c.rate > 0).sort((a, b) => b.rate - a.rate);
      if (caps.length === 0) break;
      caps[0].s.demands = [{ fn, rate: caps[0].rate }];
      rest -= caps[0].rate;
    }
    if (rest > EPS * fn.rate) leftovers.push({ fn, rate: rest });
  }
  const shed = gpus.flatMap((gpu) => resizeGpu(ctx, gpu));
  // Time-share what is left on slots that still have room in their cycle.
  for (const d of mergeDemands([...leftovers, ...shed])) {
    for (let i = 0; i < gpus.length; i++) {
      const trial = cloneGpu(gpus[i]);
      const slot = trial.gpulets.find((s) =>
        s.demands.length < ctx.maxFunctionsPerGpulet && !s.demands.some((e) => e.fn === d.fn) &&
        sizeGpulet(ctx.table, s.part, [...s.demands, d].map((e) => ({ ...e, alpha: 1 })))
      );
      if (!slot) continue;
      slot.demands.push({ ...d });
      if (resizeGpu(ctx, trial).length === 0) {
        gpus[i] = trial;
        break;
      }
    }
  }
  return gpus;
}

/** The best plan over every fixed layout of `problem.gpus` GPUs (and of fewer GPUs when they suffice). */
export function planIdeal(problem: PlanProblem, options: PlannerOptions = DEFAULT_OPTIONS): Plan {
  if (problem.gpus > IDEAL_MAX_GPUS) {
    throw new Error(`ideal searches every layout and is limited to ${IDEAL_MAX_GPUS} GPUs (asked ${problem.gpus})`);
  }
  if (!problem.interference) throw new Error("policy ideal needs an interference model (a pairs file)");
  const ctx = sizingContext(problem, options, true, 2, options.maxFunctionsPerGpulet);
  const splits = gpuSplits(partSet(problem, options));
  let best: Plan | undefined;
  for (let n = 1; n <= problem.gpus; n++) {
    for (const pick of multisets(splits.length, n)) {
      const layout = fillLayout(ctx, pick.map((i) => splits[i]), problem.functions);
      const plan = toPlan("ideal", problem.device, problem.functions, layout, ctx.table.tail);
      if (!best || betterPlan(plan, best, problem.functions)) best = plan;
    }
    if (best?.feasible) break; // fewer GPUs already serve everything
  }
  return best!;
}
