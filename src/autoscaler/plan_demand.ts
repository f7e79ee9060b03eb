/**
 * One re-plan of the autoscaler (pure): the demand with headroom, planned incrementally from the running plan
 * (`gpulet`) or from scratch; when the devices cannot take the headroom, less is tried, down to none, so the
 * plan serves the observed demand in full where it can rather than cutting an arbitrary function short.
 * Run on the serving loop by the simulator, in a worker by the live controller (`remote_planner.ts`).
 */
import { replan } from "../planner/incremental.ts";
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import type { Plan, Policy } from "../planner/plan.ts";
import { DEFAULT_OPTIONS, type PlannerOptions, type PlanProblem } from "../planner/planner.ts";
import { makePlan } from "../planner/policies.ts";
import type { PlannedFunction } from "../planner/sizing.ts";
import { type AppGraph, splitAppSlo } from "../planner/app_split.ts";

/** What a re-plan is made on. */
export interface PlanContext {
  device: string;
  /** GPUs available: plans never use more. */
  gpus: number;
  latency: LatencyModel;
  interference?: InterferenceModel;
  /** Planner policy: `gpulet` re-plans incrementally; the others plan from scratch each time. */
  policy: Exclude<Policy, "ideal" | "bound">;
  planner?: PlannerOptions;
}

/** One re-plan: the demand (rates with `headroom` included), the plan in force, and which way it goes. */
export interface PlanRequest {
  functions: PlannedFunction[];
  current?: Plan;
  /** Re-plans down also empty GPUs whose load fits elsewhere; re-plans up only add. */
  compact: boolean;
  headroom: number;
}

/** The split of `app`'s SLO over its levels (ms each) that serves `rate` app requests/s on the fewest GPUs. */
export function splitDemand(ctx: PlanContext, app: AppGraph, rate: number): number[] {
  const problem = { device: ctx.device, gpus: ctx.gpus, latency: ctx.latency, interference: ctx.interference };
  return splitAppSlo(problem, app, rate, ctx.policy, ctx.planner ?? DEFAULT_OPTIONS).budgetsMs;
}

/** Plans `request` in `ctx`. */
export function planDemand(ctx: PlanContext, request: PlanRequest): Plan {
  let plan: Plan | undefined;
  for (const keep of [1, 0.5, 0]) {
    const factor = (1 + request.headroom * keep) / (1 + request.headroom);
    const functions = request.functions.map((f) => ({ ...f, rate: f.rate * factor }));
    const problem: PlanProblem = {
      device: ctx.device,
      gpus: ctx.gpus,
      functions,
      latency: ctx.latency,
      interference: ctx.interference,
    };
    const options = ctx.planner ?? DEFAULT_OPTIONS;
    plan = ctx.policy === "gpulet" && request.current && ctx.interference
      ? replan(problem, request.current, { ...options, compact: request.compact })
      : makePlan(problem, ctx.policy, options);
    if (plan.feasible) return plan;
  }
  return plan!; // without headroom: what the devices can serve of the observed demand
}
