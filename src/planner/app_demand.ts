/**
 * A workload's applications as planner demand (issue 22; pure): each app's graph from its stages, its SLO
 * split over its levels for its rate (`splitAppSlo`), and the functions' demand with every app's calls added
 * (rate × fan-out; the SLO of a function is the tightest of its own and the level budgets it serves). Each
 * app is split on its own, as Nexus splits one query's budget, then all are planned together: a function
 * two apps share is sized once, for both.
 */
import { stageLevels } from "../functions/app.ts";
import { type AppGraph, dispersedCv, evenSplit, groupDispersion, splitAppSlo } from "./app_split.ts";
import { monotonePeak, peakScale } from "./peak.ts";
import type { Plan, Policy } from "./plan.ts";
import { DEFAULT_OPTIONS, type PlannerOptions, type PlanProblem } from "./planner.ts";
import { makePlan } from "./policies.ts";
import type { PlannedFunction } from "./sizing.ts";
import { type Workload, WorkloadError } from "./workload.ts";

/** One stage of a workload's app: the function it calls and its mean calls per app request. */
export interface WorkloadStage {
  stage: string;
  function: string;
  fanOut: number;
}

/** A workload's app: its rate, SLO, and stages in levels (a level waits for the one before). */
export interface WorkloadApp {
  name: string;
  rate: number;
  sloMs: number;
  levels: WorkloadStage[][];
}

/** An app's split as a plan carries it: each level's budget (ms) at the app rate it was made for. */
export interface AppBudget {
  name: string;
  rate: number;
  sloMs: number;
  budgetsMs: number[];
}

/** The workload's apps, checked against its functions: stage names, edges, cycles and functions. */
export function workloadApps(
  w: Workload,
  functions: readonly PlannedFunction[],
  source = "workload",
): WorkloadApp[] {
  const fnNames = new Set(functions.map((f) => f.name));
  const seen = new Set<string>();
  return (w.apps ?? []).map((a, i) => {
    const where = `${source}: apps[${i}] (${a.name})`;
    if (fnNames.has(a.name) || seen.has(a.name)) {
      throw new WorkloadError(`${where}: the name is taken by a function or another app`);
    }
    seen.add(a.name);
    const byName = new Map(a.stages.map((s) => [s.name, s]));
    if (byName.size !== a.stages.length) throw new WorkloadError(`${where}: stage names must be unique`);
    for (const s of a.stages) {
      if (!fnNames.has(s.function)) {
        throw new WorkloadError(`${where}: stage ${s.name} calls ${s.function}, which is not in the functions`);
      }
      const unknown = (s.after ?? []).filter((n) => !byName.has(n));
      if (unknown.length) throw new WorkloadError(`${where}: stage ${s.name} waits for unknown ${unknown}`);
    }
    let levels: string[][];
    try {
      levels = stageLevels(Object.fromEntries(byName));
    } catch (e) {
      throw new WorkloadError(`${where}: ${(e as Error).message.replace(/^defineApp: /, "")}`);
    }
    return {
      name: a.name,
      rate: a.rate,
      sloMs: a.sloMs,
      levels: levels.map((l) =>
        l.map((n) => ({ stage: n, function: byName.get(n)!.function, fanOut: byName.get(n)!.fanOut ?? 1 }))
      ),
    };
  });
}

/** `app` as the SLO splitter's graph; its stages are named `<app>.<stage>` and sized as their function. */
function appGraph(app: WorkloadApp, functions: readonly PlannedFunction[]): AppGraph {
  const fn = (name: string) => functions.find((f) => f.name === name)!;
  return {
    name: app.name,
    sloMs: app.sloMs,
    levels: app.levels.map((l) =>
      l.map((s) => ({
        name: `${app.name}.${s.stage}`,
        model: fn(s.function).model,
        maxBatch: fn(s.function).maxBatch,
        fanOut: s.fanOut,
      }))
    ),
  };
}

/**
 * The functions' demand with the apps' calls: each function's own rate plus every app's rate × fan-out of
 * the stages that call it, everything × `scale`; its SLO the tightest of its own (when called directly) and
 * its stages' level budgets. Calls that come in groups (fan-out > 1) are burstier than the apps' arrivals
 * (CV `cv`): the function's `arrivalCv` is that of a renewal process with the same dispersion as its merged
 * calls, so the tail model sizes it for the groups (four quadrants of one frame arrive together).
 */
export function withAppCalls(
  functions: readonly PlannedFunction[],
  apps: readonly WorkloadApp[],
  budgets: readonly AppBudget[],
  scale = 1,
  cv = 1,
): PlannedFunction[] {
  return functions.map((f) => {
    let rate = f.rate * scale;
    let sloMs = f.rate > 0 ? f.sloMs : Infinity;
    let dispersed = rate * cv * cv;
    apps.forEach((app, a) => {
      app.levels.forEach((level, l) => {
        for (const s of level) {
          if (s.function !== f.name || s.fanOut <= 0) continue;
          const calls = app.rate * scale * s.fanOut;
          rate += calls;
          dispersed += calls * groupDispersion(s.fanOut, cv);
          sloMs = Math.min(sloMs, budgets[a].budgetsMs[l]);
        }
      });
    });
    const out: PlannedFunction = { ...f, rate, sloMs: Number.isFinite(sloMs) ? sloMs : f.sloMs };
    const arrivalCv = rate > 0 ? dispersedCv(dispersed / rate, cv) : undefined;
    if (arrivalCv !== undefined) out.arrivalCv = arrivalCv;
    return out;
  });
}

/** The app budgets of `plan` in the order of `apps`, matched by name; undefined when it has none for one of them. */
export function planSplitsFor(plan: Plan, apps: readonly WorkloadApp[]): AppBudget[] | undefined {
  const splits = apps.map((a) => plan.appSplits?.find((b) => b.name === a.name));
  return splits.every((s) => s !== undefined) ? splits as AppBudget[] : undefined;
}

/** Policies the SLO splitter plans with (the others are bounds, not engines: splits use `gpulet`'s). */
const SPLIT_POLICIES: readonly Policy[] = ["gpulet", "gpulet-noint", "timeshare", "greedy"];

/** What a workload with apps asks the planner: each app's split, and the functions with its calls added. */
export interface AppDemand {
  functions: PlannedFunction[];
  budgets: AppBudget[];
}

/** The plan of a workload with apps, with the demand it was made for. */
export interface AppPlan extends AppDemand {
  plan: Plan;
}

/**
 * Splits every app's SLO for its rate × `scale` (a one-level app gets its whole SLO) and adds the apps'
 * calls at those budgets to the functions.
 */
export function appDemand(
  problem: PlanProblem,
  apps: readonly WorkloadApp[],
  policy: Policy,
  options: PlannerOptions = DEFAULT_OPTIONS,
  scale = 1,
): AppDemand {
  const splitPolicy = SPLIT_POLICIES.includes(policy) ? policy : "gpulet";
  const budgets = apps.map((app) => {
    const rate = app.rate * scale;
    const budgetsMs = app.levels.length === 1 || rate <= 0
      ? evenSplit(app)
      : splitAppSlo(problem, appGraph(app, problem.functions), rate, splitPolicy, options).budgetsMs;
    return { name: app.name, rate, sloMs: app.sloMs, budgetsMs };
  });
  return { functions: withAppCalls(problem.functions, apps, budgets, scale, options.tail?.cv ?? 1), budgets };
}

/**
 * Plans a workload with apps: {@link appDemand}, then the plan for it. The plan carries the splits
 * (`appSplits`), so a replay can judge each app whole.
 */
export function planWithApps(
  problem: PlanProblem,
  apps: readonly WorkloadApp[],
  policy: Policy,
  options: PlannerOptions = DEFAULT_OPTIONS,
  scale = 1,
): AppPlan {
  const { functions, budgets } = appDemand(problem, apps, policy, options, scale);
  const plan = makePlan({ ...problem, functions }, policy, options);
  return { plan: budgets.length ? { ...plan, appSplits: budgets } : plan, functions, budgets };
}

/**
 * The app peak: the largest common multiplier of every app's (and function's) rate that `policy` serves in
 * full on the problem's GPUs, each app re-split at every rate tried; below it, every fraction plans too.
 */
export function appPeakScale(
  problem: PlanProblem,
  apps: readonly WorkloadApp[],
  policy: Policy,
  options: PlannerOptions = DEFAULT_OPTIONS,
): number {
  const feasible = (s: number) => planWithApps(problem, apps, policy, options, s).plan.feasible;
  return monotonePeak(feasible, peakScale(feasible, 1));
}
