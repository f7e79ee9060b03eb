/**
 * Workload JSON (DESIGN.md): the planner's and simulator's input, validated at the boundary, and checked
 * against the profile so every mistake gets one precise message.
 */
import { z } from "zod";
import { describeZodError } from "../functions/manifest.ts";
import type { LatencyModel } from "./latency_model.ts";
import type { PlannedFunction } from "./sizing.ts";
import { DEFAULT_TAIL, type TailTarget } from "./tail.ts";

/** `{ device, gpus, percentile?, arrivalCv?, functions: [{ name, model, rate, sloMs, maxBatch? }] }`. */
export const Workload = z.object({
  device: z.string().min(1),
  gpus: z.number().int().min(1).max(1024),
  description: z.string().optional(),
  /** The latency percentile every function's SLO holds at, in % (default 99). */
  percentile: z.number().gt(50, "a percentile is in % (e.g. 99), above 50").lt(100).optional(),
  /** CV of inter-arrival gaps the plan must hold under: 1 Poisson (default), 2 burstier (Gamma). */
  arrivalCv: z.number().positive().max(10).optional(),
  functions: z.array(
    z.object({
      name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "a function name is 1-63 characters of a-z, 0-9, '_', '-'"),
      model: z.string().min(1),
      rate: z.number().nonnegative("a rate is requests per second, ≥ 0"),
      sloMs: z.number().positive(),
      maxBatch: z.number().int().min(1).max(1024).optional(),
    }).strict(),
  ).min(1).refine(
    (fs) => new Set(fs.map((f) => f.name)).size === fs.length,
    "function names must be unique",
  ),
  /**
   * Applications (issue 22): each runs its stages' functions (listed above, with their direct rate, often 0)
   * and adds `rate × fanOut` to each; the planner splits the app's SLO over its levels (`app_demand.ts`).
   */
  apps: z.array(
    z.object({
      name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "an app name is 1-63 characters of a-z, 0-9, '_', '-'"),
      rate: z.number().nonnegative("a rate is requests per second, ≥ 0"),
      sloMs: z.number().positive(),
      stages: z.array(
        z.object({
          name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "a stage name is 1-63 characters of a-z, 0-9, '_'"),
          function: z.string().min(1),
          after: z.array(z.string()).optional(),
          /** Calls per app request (mean; default 1). */
          fanOut: z.number().nonnegative().max(1024).optional(),
        }).strict(),
      ).min(1),
    }).strict(),
  ).optional(),
}).strict();
export type Workload = z.infer<typeof Workload>;

/** A workload that does not fit the profile or the schema. */
export class WorkloadError extends Error {}

/** JSON text of a file the user gave (`source` names it): a `WorkloadError` saying so if it is not JSON. */
export function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WorkloadError(`${source}: not JSON: ${(e as Error).message}`);
  }
}

/** Parses workload JSON text; `source` names it in errors. */
export function parseWorkload(text: string, source = "workload"): Workload {
  const json = parseJsonText(text, source);
  const parsed = Workload.safeParse(json);
  if (!parsed.success) throw new WorkloadError(`${source}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/**
 * The planner's functions, after checking each against the profile: the model must be profiled and the SLO
 * must allow at least batch 1 on a whole GPU (`2·L(1, 100 %) ≤ SLO`: a request may wait one batch).
 */
export function plannedFunctions(w: Workload, latency: LatencyModel, source = "workload"): PlannedFunction[] {
  return w.functions.map((f, i) => {
    const where = `${source}: functions[${i}] (${f.name})`;
    if (!latency.has(f.model)) {
      throw new WorkloadError(
        `${where}: model "${f.model}" has no profile in ${latency.source} (profiled: ${latency.models().join(", ")})`,
      );
    }
    const parts = latency.parts(f.model);
    const fastest = latency.latency(f.model, parts[parts.length - 1], 1);
    if (2 * fastest > f.sloMs) {
      throw new WorkloadError(
        `${where}: sloMs ${f.sloMs} is below what ${f.model} can meet: batch 1 takes ${fastest} ms on ` +
          `${parts[parts.length - 1]} % and a request may wait one batch (needs sloMs ≥ ${2 * fastest})`,
      );
    }
    const batches = latency.batches(f.model);
    return {
      name: f.name,
      model: f.model,
      rate: f.rate,
      sloMs: f.sloMs,
      maxBatch: Math.min(f.maxBatch ?? 32, batches[batches.length - 1]),
    };
  });
}

/** Every rate × `scale` (peak search). */
export function scaled(functions: readonly PlannedFunction[], scale: number): PlannedFunction[] {
  return functions.map((f) => ({ ...f, rate: f.rate * scale }));
}

/**
 * Headroom for Poisson arrivals: the rate whose per-second count stays under the planned rate 99 % of the time,
 * by the normal approximation `r + 2.326·√r` (the original's table, without its off-by-one).
 */
export function poissonHeadroom(rate: number): number {
  return rate <= 0 ? 0 : rate + 2.326 * Math.sqrt(rate);
}

/**
 * The tail target a workload asks for: its `percentile` (%) and `arrivalCv`, each overridden when given
 * (the CLI's `--percentile` and `--cv`), else p99 under Poisson arrivals.
 */
export function tailTarget(w: Workload, overrides: { percentile?: number; cv?: number } = {}): TailTarget {
  const percentile = overrides.percentile ?? w.percentile;
  if (percentile !== undefined && !(percentile > 50 && percentile < 100)) {
    throw new WorkloadError(`a percentile is in % (e.g. 99), above 50 and below 100, got ${percentile}`);
  }
  return {
    percentile: percentile !== undefined ? Number((percentile / 100).toPrecision(12)) : DEFAULT_TAIL.percentile,
    cv: overrides.cv ?? w.arrivalCv ?? DEFAULT_TAIL.cv,
    spread: DEFAULT_TAIL.spread,
  };
}
