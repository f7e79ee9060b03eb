/**
 * The plan validator, used by tests and before a plan is applied: it re-derives every latency from the
 * profile and the interference model for each gpu-let's actual neighbours, and checks the rules of DESIGN.md
 * ("Plan JSON"). It trusts nothing the plan says about latency.
 */
import type { InterferenceModel } from "./interference.ts";
import type { Plan } from "./plan.ts";
import { LatencyTable, neighbourLoad, type PlannedFunction, queueClass } from "./sizing.ts";
import type { LatencyModel } from "./latency_model.ts";
import { missShares, percentileLatencies, type QueueClass, type TailTarget } from "./tail.ts";

/** Relative tolerance for rounding in the plan JSON. */
const TOL = 1e-6;

/** What the validator checks against. */
export interface ValidationContext {
  functions: readonly PlannedFunction[];
  latency: LatencyModel;
  /** Without it, latencies are checked without interference. */
  interference?: InterferenceModel;
  /** Most GPUs the plan may use. */
  gpus?: number;
  /** Multiplier on profiled latencies the plan was made with (default 1). */
  latencyRatio?: number;
  /** The tail target to check (default: the plan's own `tail`; `null`: the average rules only). */
  tail?: TailTarget | null;
}

type PlanGpu = Plan["gpus"][number];

/**
 * The slowdown of `model` at `batch` on gpu-let `g` of `gpu` from every other gpu-let there, as the models
 * say: each neighbour's functions add their pairwise slowdown weighted by the share of time their rates and
 * batch latencies keep it busy (the planner's rule, `InterferenceModel.alongside`). `models` maps function
 * names to models; unknown names are skipped.
 */
export function slowdownIn(
  gpu: PlanGpu,
  g: PlanGpu["gpulets"][number],
  model: string,
  batch: number,
  models: ReadonlyMap<string, string>,
  interference: InterferenceModel,
  table: LatencyTable,
): number {
  const neighbours = gpu.gpulets.filter((other) => other !== g).map((other) =>
    neighbourLoad(
      table,
      other.part,
      other.functions.flatMap((o) => {
        const om = models.get(o.name);
        return om ? [{ model: om, rate: o.rate, batch: o.batch, latencyMs: o.latencyMs }] : [];
      }),
    )
  );
  return interference.alongside({ model, part: g.part, batch }, neighbours);
}

const pct = (x: number) => Number((100 * x).toPrecision(4));

/** A percentile's name: 0.99 → `p99`, 0.999 → `p99.9`. */
export const percentileName = (percentile: number) => `p${pct(percentile)}`;

/** The tail target `validatePlan` checks: the context's, else the plan's own; none for `null` or neither. */
export function checkedTail(plan: Plan, tail: TailTarget | null | undefined): TailTarget | undefined {
  return tail === null ? undefined : tail ?? plan.tail;
}
const arrivals = (cv: number) => (cv === 1 ? "Poisson arrivals" : `Gamma arrivals, CV ${cv}`);

/**
 * Every rule the plan breaks, as readable sentences; empty when the plan is valid. With a tail target (the
 * context's or the plan's own), each function's modelled percentile latency must be within its SLO too.
 */
export function validatePlan(plan: Plan, ctx: ValidationContext): string[] {
  const errors: string[] = [];
  const table = new LatencyTable(ctx.latency, ctx.latencyRatio ?? 1);
  const tail = checkedTail(plan, ctx.tail);
  const byName = new Map(ctx.functions.map((f) => [f.name, f]));
  const models = new Map(ctx.functions.map((f) => [f.name, f.model]));
  const served = new Map<string, number>();
  if (ctx.gpus !== undefined && plan.gpus.length > ctx.gpus) {
    errors.push(`the plan uses ${plan.gpus.length} GPUs, at most ${ctx.gpus} are available`);
  }
  if (plan.gpusUsed !== plan.gpus.length) {
    errors.push(`gpusUsed is ${plan.gpusUsed} but ${plan.gpus.length} are listed`);
  }
  const ids = new Set<number>();
  for (const gpu of plan.gpus) {
    if (ids.has(gpu.id)) errors.push(`GPU ${gpu.id} is listed twice`);
    ids.add(gpu.id);
    if (ctx.gpus !== undefined && gpu.id >= ctx.gpus) {
      errors.push(`GPU ${gpu.id} does not exist: ids go from 0 to ${ctx.gpus - 1}`);
    }
    const total = gpu.gpulets.reduce((s, g) => s + g.part, 0);
    if (total > 100 + TOL) errors.push(`GPU ${gpu.id}: parts add up to ${total} % (> 100 %)`);
    gpu.gpulets.forEach((g, gi) => {
      const where = `GPU ${gpu.id} gpu-let ${gi} (${g.part} %)`;
      if (g.functions.length === 0) errors.push(`${where}: serves no function`);
      const duty = g.functions[0]?.dutyMs ?? 0;
      let work = 0;
      const latencies: number[] = [];
      const classes: QueueClass[] = [];
      for (const f of g.functions) {
        const fn = byName.get(f.name);
        if (!fn) {
          errors.push(`${where}: unknown function "${f.name}"`);
          latencies.push(0);
          continue;
        }
        if (f.dutyMs !== duty) errors.push(`${where}: functions of one gpu-let must share one duty cycle`);
        if (f.batch > fn.maxBatch) {
          errors.push(`${where}: ${f.name} batch ${f.batch} exceeds its maxBatch ${fn.maxBatch}`);
        }
        const alpha = ctx.interference ? slowdownIn(gpu, g, fn.model, f.batch, models, ctx.interference, table) : 1;
        const latency = table.latency(fn.model, g.part, f.batch) * alpha;
        if (f.latencyMs < latency * (1 - TOL)) {
          errors.push(`${where}: ${f.name} claims ${f.latencyMs} ms, the models say ${latency.toFixed(4)} ms`);
        }
        const l = Math.max(latency, f.latencyMs);
        latencies.push(l);
        classes.push(queueClass(table, fn, g.part, alpha, f.rate, f.batch));
        work += l;
        if (f.rate > (1000 * f.batch / f.dutyMs) * (1 + TOL)) {
          errors.push(`${where}: ${f.name} rate ${f.rate}/s exceeds batch ${f.batch} per ${f.dutyMs} ms`);
        }
        served.set(f.name, (served.get(f.name) ?? 0) + f.rate);
      }
      if (work > duty * (1 + TOL)) {
        errors.push(`${where}: batches take ${work.toFixed(4)} ms per ${duty} ms cycle (occupancy > 1)`);
      }
      if (tail && classes.length === g.functions.length) {
        const misses = missShares(classes, tail);
        const allowed = 1 - tail.percentile + TOL;
        // The percentile latencies (a search each) only say by how much: only a gpu-let that misses needs them.
        const at = misses.some((m) => m > allowed) ? percentileLatencies(classes, tail) : [];
        g.functions.forEach((f, i) => {
          if (misses[i] <= allowed) return;
          errors.push(
            `${where}: ${f.name} misses ${percentileName(tail.percentile)}: ${at[i].toFixed(3)} ms > SLO ${
              classes[i].sloMs
            } ms at ${f.rate}/s (${pct(1 - misses[i])} % within; ${arrivals(tail.cv)})`,
          );
        });
      }
      for (const f of g.functions) {
        const fn = byName.get(f.name);
        if (fn && duty + work > fn.sloMs * (1 + TOL)) {
          errors.push(
            `${where}: ${f.name} waits up to ${(duty + work).toFixed(4)} ms (duty ${duty} + batches ${
              work.toFixed(4)
            }), SLO ${fn.sloMs} ms`,
          );
        }
      }
    });
  }
  const unserved = new Map(plan.unserved.map((u) => [u.name, u.rate]));
  for (const fn of ctx.functions) {
    const got = (served.get(fn.name) ?? 0) + (unserved.get(fn.name) ?? 0);
    if (got < fn.rate * (1 - TOL) - 1e-9) {
      errors.push(
        `${fn.name}: planned ${served.get(fn.name) ?? 0}/s + unserved ${unserved.get(fn.name) ?? 0}/s ` +
          `< demanded ${fn.rate}/s`,
      );
    }
  }
  if (plan.feasible !== (plan.unserved.length === 0)) {
    errors.push(`feasible must be true exactly when nothing is unserved`);
  }
  return errors;
}
