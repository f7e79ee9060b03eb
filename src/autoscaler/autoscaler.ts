/**
 * The autoscaler's control loop, with time passed in (the live controller ticks it on a timer, the
 * simulator in virtual time): arrivals feed the rate monitor; each tick asks the policy whether to re-plan;
 * a re-plan runs the planner (incrementally from the running plan for `gpulet`; `plan_demand.ts`) and is
 * recorded. The simulator plans on its own thread (`tick`); the live controller in a worker (`tickAsync`).
 */
import type { Plan } from "../planner/plan.ts";
import { gpuletChanges } from "../planner/plan_diff.ts";
import type { PlannedFunction } from "../planner/sizing.ts";
import { type PlanContext, planDemand, type PlanRequest } from "./plan_demand.ts";
import {
  committed,
  decide,
  DEFAULT_SCALE_POLICY,
  type ScaleDecision,
  type ScalePolicyOptions,
  scaleState,
} from "./policy.ts";
import { DEFAULT_RATE_OPTIONS, RateMonitor, type RateMonitorOptions } from "./rate_monitor.ts";

/** A function as the autoscaler sees it (its rate is measured, not given). */
export type ScaledFunction = Omit<PlannedFunction, "rate">;

/** What the autoscaler plans on: the planning context and how it measures and scales. */
export interface AutoscalerConfig extends PlanContext {
  scale?: ScalePolicyOptions;
  rates?: RateMonitorOptions;
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

type ReplanDecision = Extract<ScaleDecision, { kind: "replan" }>;

export class Autoscaler {
  readonly monitor: RateMonitor;
  readonly history: PlanChange[] = [];
  replans = 0;
  private functions = new Map<string, ScaledFunction>();
  private expected = new Map<string, number>();
  private readonly state = scaleState(new Map(), -Infinity);
  private current?: Plan;
  private inFlight?: Promise<Plan>;

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

  /** Decides and, if needed, re-plans on this thread; returns the change made, if any. */
  tick(now: number): PlanChange | undefined {
    const wanted = this.decideNow(now);
    if (!wanted) return undefined;
    const t0 = performance.now();
    const plan = planDemand(this.config, wanted.request);
    return this.commit(now, wanted.decision, plan, performance.now() - t0);
  }

  /**
   * Decides and, if needed, re-plans with `planner` (a worker, off the serving loop). While a re-plan is in
   * flight a tick does nothing (`wait`: it waits for it, then decides again, as a deploy must).
   */
  async tickAsync(planner: (request: PlanRequest) => Promise<Plan>, wait = false): Promise<PlanChange | undefined> {
    while (this.inFlight) {
      if (!wait) return undefined;
      await this.inFlight.catch(() => {});
    }
    const at = performance.now(); // read after any wait: the live controller's clock
    const wanted = this.decideNow(at);
    if (!wanted) return undefined;
    const t0 = performance.now();
    const planning = planner(wanted.request);
    this.inFlight = planning;
    try {
      const plan = await planning;
      return this.commit(at, wanted.decision, plan, performance.now() - t0);
    } finally {
      this.inFlight = undefined;
    }
  }

  /** The policy's decision at `now`, with the re-plan it asks for (undefined: hold). */
  private decideNow(now: number): { decision: ReplanDecision; request: PlanRequest } | undefined {
    const rates = new Map([...this.functions.keys()].map((n) => {
      const r = this.monitor.rates(n, now);
      const e = this.state.planned.has(n) ? 0 : this.expected.get(n) ?? 0;
      return [n, { ...r, short: Math.max(r.short, e), smoothed: Math.max(r.smoothed, e) }];
    }));
    const policy = this.config.scale ?? DEFAULT_SCALE_POLICY;
    const decision = decide(this.state, rates, now, policy);
    if (decision.kind === "hold") return undefined;
    const scale = this.config.rateScale ?? 1;
    const functions = [...decision.demand].map(([name, rate]) => ({
      ...this.functions.get(name)!,
      rate: rate * scale,
    }));
    const headroom = policy.headroom;
    return {
      decision,
      request: { functions, current: this.current, compact: decision.direction === "down", headroom },
    };
  }

  /** Puts `plan` in force for `decision` and records the change. */
  private commit(now: number, decision: ReplanDecision, plan: Plan, planMs: number): PlanChange {
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
}
