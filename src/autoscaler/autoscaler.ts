/**
 * The autoscaler's control loop, with time passed in (the live controller ticks it on a timer, the
 * simulator in virtual time): arrivals feed the rate monitor; each tick asks the policy whether to re-plan;
 * a re-plan runs the planner (incrementally from the running plan for `gpulet`) and is recorded.
 */
import type { InterferenceModel } from "../planner/interference.ts";
import { replan } from "../planner/incremental.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import type { Plan, Policy } from "../planner/plan.ts";
import { gpuletChanges } from "../planner/plan_diff.ts";
import { DEFAULT_OPTIONS, type PlannerOptions, type PlanProblem } from "../planner/planner.ts";
import { makePlan } from "../planner/policies.ts";
import type { PlannedFunction } from "../planner/sizing.ts";
import { committed, decide, DEFAULT_SCALE_POLICY, type ScalePolicyOptions, scaleState } from "./policy.ts";
import { DEFAULT_RATE_OPTIONS, RateMonitor, type RateMonitorOptions } from "./rate_monitor.ts";

/** A function as the autoscaler sees it (its rate is measured, not given). */
export type ScaledFunction = Omit<PlannedFunction, "rate">;

/** What the autoscaler plans on. */
export interface AutoscalerConfig {
  device: string;
  /** GPUs available: plans never use more. */
  gpus: number;
  latency: LatencyModel;
  interference?: InterferenceModel;
  /** Planner policy: `gpulet` re-plans incrementally; the others plan from scratch each time. */
  policy: Exclude<Policy, "ideal" | "bound">;
  scale?: ScalePolicyOptions;
  rates?: RateMonitorOptions;
  planner?: PlannerOptions;
  /**
   * Measured rates × this = the rates planned on the profile (simulated devices with dilated time serve
   * `rateScale` times fewer requests per real second than the profile says). Default 1.
   */
  rateScale?: number;
}

/** One re-plan, as `GET /admin/plan` and `/metrics` report it. */
export interface PlanChange {
  /** Time of the decision (ms, the caller's clock). */
  at: number;
  direction: "up" | "down" | "new";
  reason: string;
  /** The demand (req/s, headroom included) planned for. */
  demand: Record<string, number>;
  gpusBefore: number;
  gpusAfter: number;
  /** Gpu-lets started plus stopped. */
  changes: number;
  /** Planning time (ms, wall clock). */
  planMs: number;
  plan: Plan;
}

/** Most plan changes kept in memory. */
const HISTORY = 200;

export class Autoscaler {
  readonly monitor: RateMonitor;
  readonly history: PlanChange[] = [];
  replans = 0;
  private functions = new Map<string, ScaledFunction>();
  private expected = new Map<string, number>();
  private readonly state = scaleState(new Map(), -Infinity);
  private current?: Plan;

  constructor(readonly config: AutoscalerConfig) {
    this.monitor = new RateMonitor(config.rates ?? DEFAULT_RATE_OPTIONS);
  }

  /** The plan in force (undefined before the first tick with functions). */
  get plan(): Plan | undefined {
    return this.current;
  }

  /**
   * Sets the deployed functions; the next tick plans for new ones and drops removed ones. `expected` rates
   * (req/s) size a new function's first plan before any traffic is seen (default: the policy's minimum).
   */
  setFunctions(functions: readonly ScaledFunction[], expected: ReadonlyMap<string, number> = new Map()): void {
    this.functions = new Map(functions.map((f) => [f.name, f]));
    this.expected = new Map(expected);
    for (const name of this.monitor.names()) if (!this.functions.has(name)) this.monitor.forget(name);
  }

  /** Records `count` arrivals of `name` at `now`. */
  arrived(name: string, now: number, count = 1): void {
    if (this.functions.has(name)) this.monitor.record(name, now, count);
  }

  /** Decides and, if needed, re-plans; returns the change made, if any. */
  tick(now: number): PlanChange | undefined {
    const rates = new Map([...this.functions.keys()].map((n) => {
      const r = this.monitor.rates(n, now);
      const e = this.state.planned.has(n) ? 0 : this.expected.get(n) ?? 0;
      return [n, { ...r, short: Math.max(r.short, e), smoothed: Math.max(r.smoothed, e) }];
    }));
    const decision = decide(this.state, rates, now, this.config.scale ?? DEFAULT_SCALE_POLICY);
    if (decision.kind === "hold") return undefined;
    const scale = this.config.rateScale ?? 1;
    const functions = [...decision.demand].map(([name, rate]) => ({
      ...this.functions.get(name)!,
      rate: rate * scale,
    }));
    const t0 = performance.now();
    const plan = this.planFor(functions, decision.direction === "down");
    const planMs = performance.now() - t0;
    const change: PlanChange = {
      at: now,
      direction: decision.direction,
      reason: decision.reason,
      demand: Object.fromEntries(decision.demand),
      gpusBefore: this.current?.gpusUsed ?? 0,
      gpusAfter: plan.gpusUsed,
      changes: this.current ? gpuletChanges(this.current, plan) : plan.gpus.flatMap((g) => g.gpulets).length,
      planMs,
      plan,
    };
    committed(this.state, decision.demand, now);
    this.current = plan;
    this.replans++;
    this.history.push(change);
    if (this.history.length > HISTORY) this.history.shift();
    return change;
  }

  /**
   * Plans for `functions` (rates with headroom). When the devices cannot take the headroom, less headroom is
   * tried, down to none: the plan then serves the observed demand in full where it can, rather than
   * cutting an arbitrary function short.
   */
  private planFor(functions: PlannedFunction[], compact: boolean): Plan {
    const headroom = (this.config.scale ?? DEFAULT_SCALE_POLICY).headroom;
    let best: Plan | undefined;
    for (const keep of [1, 0.5, 0]) {
      const factor = (1 + headroom * keep) / (1 + headroom);
      const plan = this.planOnce(functions.map((f) => ({ ...f, rate: f.rate * factor })), compact);
      if (plan.feasible) return plan;
      best ??= plan;
      if (keep === 0) return plan;
    }
    return best!;
  }

  /**
   * One planning pass. `compact` (re-plans down) also empties GPUs whose load fits elsewhere; a re-plan up
   * only adds, so the gpu-lets serving a surge are not moved under it.
   */
  private planOnce(functions: PlannedFunction[], compact: boolean): Plan {
    const c = this.config;
    const problem: PlanProblem = {
      device: c.device,
      gpus: c.gpus,
      functions,
      latency: c.latency,
      interference: c.interference,
    };
    const options = c.planner ?? DEFAULT_OPTIONS;
    if (c.policy === "gpulet" && this.current && c.interference) {
      return replan(problem, this.current, { ...options, compact });
    }
    return makePlan(problem, c.policy, options);
  }
}
