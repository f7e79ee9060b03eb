/**
 * One entry point for every policy: `makePlan(problem, policy)` and `peakFor(problem, policy)`.
 */
import { boundPart, boundScale } from "./bound.ts";
import { planIdeal } from "./ideal.ts";
import { type Plan, type Policy } from "./plan.ts";
import { DEFAULT_OPTIONS, partSet, type PlannerOptions, type PlanProblem, planWithEngine } from "./planner.ts";
import { monotonePeak, peakScale } from "./peak.ts";
import { LatencyTable } from "./sizing.ts";
import { scaled } from "./workload.ts";

/**
 * Plans with any policy. `bound` is not a layout: its plan lists no GPUs, says how many whole GPUs the
 * fractional bound needs, and is feasible when that fits.
 */
export function makePlan(problem: PlanProblem, policy: Policy, options: PlannerOptions = DEFAULT_OPTIONS): Plan {
  if (policy === "ideal") return planIdeal(problem, options);
  if (policy === "bound") {
    const need = boundPart(
      LatencyTable.shared(problem.latency, options.latencyRatio, options.tail),
      problem.functions,
      partSet(problem, options),
    );
    const feasible = need <= 100 * problem.gpus;
    const share = feasible ? 0 : 1 - (100 * problem.gpus) / need;
    return {
      policy,
      device: problem.device,
      feasible,
      gpusUsed: Number.isFinite(need) ? Math.ceil(need / 100 - 1e-9) : problem.gpus,
      gpus: [],
      unserved: feasible
        ? []
        : problem.functions.filter((f) => f.rate > 0).map((f) => ({ name: f.name, rate: f.rate * share })),
    };
  }
  return planWithEngine(problem, policy, options);
}

/** Result of a peak search. */
export interface Peak {
  policy: Policy;
  /** Largest multiplier of every rate the policy serves in full on `problem.gpus` GPUs. */
  scale: number;
  /** Σ rates × scale (req/s). */
  aggregateRate: number;
}

/**
 * The paper's peak search for one policy on `problem.gpus` GPUs, claiming only a peak whose fractions plan
 * as well (`monotonePeak`).
 */
export function peakFor(problem: PlanProblem, policy: Policy, options: PlannerOptions = DEFAULT_OPTIONS): Peak {
  const total = problem.functions.reduce((s, f) => s + f.rate, 0);
  const bound = boundScale(
    LatencyTable.shared(problem.latency, options.latencyRatio, options.tail),
    problem.functions,
    partSet(problem, options),
    problem.gpus,
  );
  const feasible = (s: number) =>
    makePlan({ ...problem, functions: scaled(problem.functions, s) }, policy, options).feasible;
  const scale = policy === "bound" ? bound : monotonePeak(feasible, peakScale(feasible, bound / 2, bound));
  return { policy, scale, aggregateRate: scale * total };
}
