/**
 * The simulator: the planner and the autoscaler in virtual time, to evaluate long traces over many GPUs in
 * seconds and to compare policies on the same trace.
 *
 * Model (documented simplifications): time advances in steps of `stepMs` (100 ms). Each step, every function
 * gets a Poisson number of arrivals at its scheduled rate; they feed the autoscaler's rate monitor, and the
 * autoscaler ticks. A re-plan takes effect `warmupMs` later (make-before-break: the old plan serves while the
 * new workers warm, and both count as GPUs in use meanwhile). A gpu-let serves up to `1000·batch/duty` of each
 * of its functions per second. Whether those answers meet the SLO is re-derived from the profile and the
 * interference model for the gpu-let's actual neighbours (as the validator does) — a plan made blind to
 * interference serves late. Arrivals beyond a function's capacity in a step are shed (the platform answers
 * them 429 or 504: SLOs are far shorter than a step, so they cannot wait for the next one).
 *
 * With `requests`, the same loop routes every arrival (uniform within its step) to a gpu-let of the plan in
 * force and the request-level model answers it (`request_level.ts`); a request is good when answered within
 * its SLO, late otherwise, shed only when no gpu-let of the plan serves its function.
 */
import { Autoscaler, type AutoscalerConfig, type ScaledFunction } from "../autoscaler/autoscaler.ts";
import { normal } from "../loadgen/arrivals.ts";
import { seededRandom } from "../planner/random.ts";
import type { Schedule } from "../loadgen/schedule.ts";
import type { Plan } from "../planner/plan.ts";
import { makePlan } from "../planner/policies.ts";
import { LatencyTable } from "../planner/sizing.ts";
import { slowdownIn } from "../planner/validate.ts";
import { RequestLevel } from "./request_level.ts";

/** Simulation knobs. */
export interface SimOptions {
  stepMs: number;
  /** Time from a re-plan to its new gpu-lets serving (ms). */
  warmupMs: number;
  seed: number;
  /** Length (s); default: the schedule's last point + 30 s. */
  seconds?: number;
  /**
   * Request by request: every arrival routed to a gpu-let of the plan in force and answered by the
   * request-level model (`request_sim.ts`: work-conserving batches, interference from what runs at that
   * moment, spread service times), so tails count. Otherwise the fluid model above (much faster).
   */
  requests?: boolean;
}

/** Defaults: 100 ms steps, 1 s warm-up, seed 1. */
export const DEFAULT_SIM_OPTIONS: SimOptions = { stepMs: 100, warmupMs: 1000, seed: 1 };

/** One second of the timeline. */
export interface SimSecond {
  t: number;
  /** Arrivals in this second. */
  arrivals: number;
  /** Share answered within SLO. */
  attainment: number;
  gpus: number;
}

/** What a simulation reports. */
export interface SimReport {
  policy: string;
  seconds: number;
  arrivals: number;
  /** Answered within SLO. */
  good: number;
  /** Answered, but after the SLO (interference the plan did not expect). */
  late: number;
  /** Beyond capacity: shed. */
  shed: number;
  attainment: number;
  gpuSeconds: number;
  /** GPU-seconds of the best static plan of each phase (planned for the phase's peak rates, no headroom). */
  bestStaticGpuSeconds: number;
  replans: number;
  /** Every re-plan: when (s), which way, GPUs before and after, gpu-lets started plus stopped. */
  changes: { t: number; direction: string; gpus: number; changes: number; reason: string }[];
  /** Per schedule boundary: seconds until attainment is back to ≥ 99 % (per-second), or null. */
  recoveries: { at: number; seconds: number | null }[];
  timeline: SimSecond[];
}

/** Per function of a plan: what each second can serve within SLO and late. */
interface Capacity {
  good: number;
  late: number;
}

/** Capacity per function name of a plan, with SLO re-checked under interference. */
export function planCapacity(plan: Plan, config: AutoscalerConfig, functions: readonly ScaledFunction[]) {
  const table = new LatencyTable(config.latency);
  const byName = new Map(functions.map((f) => [f.name, f]));
  const models = new Map(functions.map((f) => [f.name, f.model]));
  const out = new Map<string, Capacity>();
  for (const gpu of plan.gpus) {
    for (const g of gpu.gpulets) {
      const duty = g.functions[0]?.dutyMs ?? 0;
      const latencies = g.functions.map((f) => {
        const fn = byName.get(f.name);
        if (!fn) return 0;
        const alpha = config.interference
          ? slowdownIn(gpu, g, fn.model, f.batch, models, config.interference, table)
          : 1;
        return table.latency(fn.model, g.part, f.batch) * alpha;
      });
      const work = latencies.reduce((a, b) => a + b, 0);
      const cycle = Math.max(duty, work);
      for (const f of g.functions) {
        const fn = byName.get(f.name);
        if (!fn || cycle <= 0) continue;
        const rate = (1000 * f.batch) / cycle;
        const c = out.get(f.name) ?? { good: 0, late: 0 };
        if (cycle + work <= fn.sloMs * (1 + 1e-6)) c.good += rate;
        else c.late += rate;
        out.set(f.name, c);
      }
    }
  }
  return out;
}

/** A Poisson sample (inversion for small means, a rounded normal for large ones). */
function poisson(mean: number, random: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(random)));
  const l = Math.exp(-mean);
  let k = 0;
  let p = random();
  while (p > l) {
    k++;
    p *= random();
  }
  return k;
}

/** Runs one simulation of `schedule` with the autoscaler configured by `config`. */
export function simulate(
  config: AutoscalerConfig,
  functions: readonly ScaledFunction[],
  schedule: Schedule,
  options: SimOptions = DEFAULT_SIM_OPTIONS,
  progress?: (fraction: number) => void,
): SimReport {
  const random = seededRandom(options.seed);
  const seconds = options.seconds ?? schedule.end() + 30;
  const autoscaler = new Autoscaler(config);
  // The first plan is sized for the schedule's opening rates, as a deploy with expected rates would be.
  autoscaler.setFunctions(functions, new Map(functions.map((f) => [f.name, schedule.rateAt(f.name, 0)])));
  let active: Plan | undefined;
  let pending: { plan: Plan; at: number } | undefined;
  let capacity = new Map<string, Capacity>();
  const totals = { arrivals: 0, good: 0, late: 0, shed: 0, gpuSeconds: 0 };
  // Per second of arrival: arrivals, answered within SLO, GPU-milliseconds in use.
  const perSecond = Array.from({ length: Math.ceil(seconds) }, () => ({ arrivals: 0, good: 0, gpuMs: 0 }));
  const slo = new Map(functions.map((f) => [f.name, f.sloMs]));
  const live = options.requests
    ? new RequestLevel(functions, config.latency, config.interference, random, (name, arrival, ms) => {
      const good = ms <= slo.get(name)!;
      if (good) totals.good++;
      else totals.late++;
      if (good) perSecond[Math.min(perSecond.length - 1, Math.floor(arrival / 1000))].good++;
    })
    : undefined;
  const steps = Math.round((seconds * 1000) / options.stepMs);
  for (let i = 0; i < steps; i++) {
    const now = i * options.stepMs;
    const change = autoscaler.tick(now);
    const use = (plan: Plan) => {
      active = plan;
      // Request by request the engines are the capacity; the fluid model needs it per function.
      if (live) live.use(plan, now);
      else capacity = planCapacity(plan, config, functions);
    };
    if (change) {
      if (!active) use(change.plan); // the first plan is in place before traffic (deploy-time warm-up)
      else pending = { plan: change.plan, at: now + options.warmupMs };
    }
    if (pending && now >= pending.at) {
      use(pending.plan);
      pending = undefined;
    }
    const inUse = new Set([...(active?.gpus ?? []), ...(pending?.plan.gpus ?? [])].map((g) => g.id)).size;
    const second = perSecond[Math.min(perSecond.length - 1, Math.floor(now / 1000))];
    const arrivals: { t: number; name: string }[] = [];
    for (const fn of functions) {
      const n = poisson((schedule.rateAt(fn.name, now / 1000) * options.stepMs) / 1000, random);
      if (n === 0) continue;
      autoscaler.arrived(fn.name, now + options.stepMs / 2, n);
      totals.arrivals += n;
      second.arrivals += n;
      if (live) {
        for (let k = 0; k < n; k++) arrivals.push({ t: now + random() * options.stepMs, name: fn.name });
        continue;
      }
      const c = capacity.get(fn.name) ?? { good: 0, late: 0 };
      const good = Math.min(n, Math.floor((c.good * options.stepMs) / 1000));
      const late = Math.min(n - good, Math.floor((c.late * options.stepMs) / 1000));
      totals.good += good;
      totals.late += late;
      totals.shed += n - good - late;
      second.good += good;
    }
    if (live) {
      for (const a of arrivals.sort((x, y) => x.t - y.t)) if (!live.arrive(a.name, a.t)) totals.shed++;
      live.advance(now + options.stepMs);
    }
    totals.gpuSeconds += (inUse * options.stepMs) / 1000;
    second.gpuMs += inUse * options.stepMs;
    if ((i + 1) % Math.round(1000 / options.stepMs) === 0) progress?.((i + 1) / steps);
  }
  live?.finish();
  const timeline: SimSecond[] = perSecond.map((s, t) => ({
    t,
    arrivals: s.arrivals,
    attainment: s.arrivals ? s.good / s.arrivals : 1,
    gpus: s.gpuMs / 1000,
  }));
  return {
    policy: config.policy,
    seconds,
    ...totals,
    attainment: totals.arrivals ? totals.good / totals.arrivals : 1,
    bestStaticGpuSeconds: bestStatic(config, functions, schedule, seconds),
    replans: autoscaler.replans,
    changes: autoscaler.history.map((c) => ({
      t: c.at / 1000,
      direction: c.direction,
      gpus: c.gpusAfter,
      changes: c.changes,
      reason: c.reason,
    })),
    recoveries: recoveries(schedule, timeline, seconds),
    timeline,
  };
}

/**
 * Per schedule boundary: seconds from it to the first second whose attainment is back to ≥ 99 % (null if
 * never). Seconds without arrivals count as fine.
 */
export function recoveries(
  schedule: Schedule,
  timeline: readonly { t: number; attainment: number | null }[],
  seconds: number,
): { at: number; seconds: number | null }[] {
  return schedule.boundaries().filter((b) => b > 0 && b < seconds).map((at) => {
    const ok = timeline.find((s) => s.t >= at && (s.attainment === null || s.attainment >= 0.99));
    return { at, seconds: ok ? ok.t - at : null };
  });
}

/**
 * GPU-seconds of the best static plan per phase: each phase between schedule boundaries planned from
 * scratch for its peak rates (no headroom) and held for the phase.
 */
export function bestStatic(
  config: AutoscalerConfig,
  functions: readonly ScaledFunction[],
  schedule: Schedule,
  seconds: number,
): number {
  const cuts = [...new Set([0, ...schedule.boundaries().filter((b) => b < seconds), seconds])].sort((a, b) => a - b);
  let total = 0;
  for (let k = 0; k + 1 < cuts.length; k++) {
    const [from, to] = [cuts[k], cuts[k + 1]];
    const fns = functions.map((f) => ({
      ...f,
      rate: Math.max(schedule.rateAt(f.name, from), schedule.rateAt(f.name, to - 1e-9)),
    }));
    const plan = makePlan({
      device: config.device,
      gpus: config.gpus,
      functions: fns,
      latency: config.latency,
      interference: config.interference,
    }, config.policy);
    total += plan.gpusUsed * (to - from);
  }
  return total;
}
