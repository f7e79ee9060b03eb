/**
 * An application's end-to-end SLO split over its stages (issue 22, the planner's part): which share of the
 * app's budget each stage gets so that the whole app is served on the fewest GPUs, as Nexus splits latency
 * budgets, instead of fixed shares. Pure: it plans candidate splits with the engine and keeps the best.
 *
 * An app runs level after level; the stages of one level run side by side (game: resnet50 beside six
 * lenets), so each gets its level's whole budget, and the levels' budgets add up to the app's SLO. A stage's
 * rate is the app's rate times its fan-out (traffic: each frame's crops go to googlenet and vgg16).
 */
import { boundPart } from "./bound.ts";
import {
  betterPlan,
  DEFAULT_OPTIONS,
  partSet,
  type PlannerOptions,
  type PlanProblem,
  planWithEngine,
} from "./planner.ts";
import type { Plan, Policy } from "./plan.ts";
import { LatencyTable, type PlannedFunction } from "./sizing.ts";

/** One stage of an app: a function and how many of its calls one app request makes. */
export interface AppStage {
  name: string;
  model: string;
  maxBatch: number;
  /** Calls per app request (measured at run time, e.g. crops per frame). */
  fanOut: number;
}

/** An app: its levels of stages, run one after the other, and its end-to-end SLO. */
export interface AppGraph {
  name: string;
  sloMs: number;
  levels: AppStage[][];
}

/** A split: each level's budget (ms), the functions it gives, and their plan. */
export interface AppSplit {
  budgetsMs: number[];
  functions: PlannedFunction[];
  plan: Plan;
}

/** Steps of the budget grid: each level's budget is a multiple of SLO / GRID_STEPS (at least one step). */
const GRID_STEPS = 10;
/** Splits planned with the engine: the best ones by the fractional bound, and the even split. */
const SHORTLIST = 3;

/**
 * Index of dispersion (variance / mean of counts over a long window) of a stage's calls: app requests at
 * renewal CV `cv` (dispersion cv²), each making K calls at once (K: the fan-out's integer part, plus one
 * with the chance of its fraction): `(Var K + cv²·E[K]²) / E[K]`.
 */
export function groupDispersion(fanOut: number, cv: number): number {
  const a = Math.floor(fanOut), p = fanOut - a;
  const varK = a * a + p * (2 * a + 1) - fanOut * fanOut;
  return (varK + cv * cv * fanOut * fanOut) / fanOut;
}

/**
 * The arrival CV of calls whose counts have index of dispersion `dispersion`, when it differs from the
 * arrivals' own `cv` (undefined when it does not: the function is planned at the target's CV).
 */
export function dispersedCv(dispersion: number, cv: number): number | undefined {
  const arrivalCv = Math.sqrt(dispersion);
  return Math.abs(arrivalCv - cv) > 1e-9 ? Number(arrivalCv.toPrecision(6)) : undefined;
}

/**
 * The stages of `app` as planned functions for `budgetsMs` at `rate` app requests/s (arriving with CV `cv`);
 * a stage whose calls come in groups gets the CV of their dispersion (`arrivalCv`).
 */
export function stageFunctions(
  app: AppGraph,
  budgetsMs: readonly number[],
  rate: number,
  cv = 1,
): PlannedFunction[] {
  return app.levels.flatMap((level, l) =>
    level.map((s) => {
      const f: PlannedFunction = {
        name: s.name,
        model: s.model,
        maxBatch: s.maxBatch,
        rate: rate * s.fanOut,
        sloMs: budgetsMs[l],
      };
      const arrivalCv = s.fanOut > 0 ? dispersedCv(groupDispersion(s.fanOut, cv), cv) : undefined;
      if (arrivalCv !== undefined) f.arrivalCv = arrivalCv;
      return f;
    })
  );
}

/** Every way to give `levels` levels whole steps of `steps`, each at least one, summing to `steps`. */
function compositions(levels: number, steps: number): number[][] {
  if (levels === 1) return [[steps]];
  const out: number[][] = [];
  for (let first = 1; first <= steps - levels + 1; first++) {
    for (const rest of compositions(levels - 1, steps - first)) out.push([first, ...rest]);
  }
  return out;
}

/** The even split: every level the same budget. */
export function evenSplit(app: Pick<AppGraph, "sloMs"> & { levels: readonly unknown[] }): number[] {
  return app.levels.map(() => app.sloMs / app.levels.length);
}

/**
 * The split of `app`'s SLO over its levels that serves `rate` app requests/s on the fewest GPUs (least
 * unserved first, then fewest GPUs, then least % of the GPUs in use), over a grid of budgets in tenths of
 * the SLO. Every split is ranked by the fractional bound (the least share of GPUs any packing could use; it
 * is cheap), and the few best, with the even split, are planned with the engine: the result is never worse
 * than the even split.
 */
export function splitAppSlo(
  problem: Omit<PlanProblem, "functions">,
  app: AppGraph,
  rate: number,
  policy: Policy = "gpulet",
  options: PlannerOptions = DEFAULT_OPTIONS,
): AppSplit {
  const grid = compositions(app.levels.length, GRID_STEPS).map((c) => c.map((k) => (app.sloMs * k) / GRID_STEPS));
  const table = LatencyTable.shared(problem.latency, options.latencyRatio, options.tail);
  const cv = options.tail?.cv ?? 1;
  const parts = partSet({ ...problem, functions: stageFunctions(app, evenSplit(app), rate, cv) }, options);
  const bound = (b: number[]) => boundPart(table, stageFunctions(app, b, rate, cv), parts);
  const ranked = grid.map((b) => ({ b, need: bound(b) })).filter((c) => Number.isFinite(c.need))
    .sort((x, y) => x.need - y.need);
  const candidates = [...ranked.slice(0, SHORTLIST).map((c) => c.b), evenSplit(app)];
  let best: AppSplit | undefined;
  for (const budgetsMs of candidates) {
    const functions = stageFunctions(app, budgetsMs, rate, cv);
    const plan = planWithEngine({ ...problem, functions }, policy, options);
    if (!best || betterPlan(plan, best.plan, functions)) best = { budgetsMs, functions, plan };
  }
  return best!;
}
