/**
 * What changes between two plans, gpu-let by gpu-let: the autoscaler starts, re-configures and stops workers
 * from this, and the incremental planner counts it. A gpu-let is a worker: its identity is its GPU, part and
 * the functions it serves. A new batch size, duty cycle or rate on the same worker is a re-configuration.
 */
import type { Plan } from "./plan.ts";

/** One gpu-let of a plan, with where it is. */
export interface PlacedGpulet {
  gpu: number;
  part: number;
  functions: Plan["gpus"][number]["gpulets"][number]["functions"];
}

/** The difference between two plans. */
export interface PlanDiff {
  /** Gpu-lets of the new plan with no match in the old one: workers to start. */
  start: PlacedGpulet[];
  /** Gpu-lets of the old plan with no match in the new one: workers to drain and stop. */
  stop: PlacedGpulet[];
  /** Matched pairs: the same worker, possibly with new batches or rates. */
  keep: { from: PlacedGpulet; to: PlacedGpulet }[];
}

/** The worker identity of a gpu-let. */
export function gpuletKey(g: PlacedGpulet): string {
  return `${g.gpu}|${g.part}|${g.functions.map((f) => f.name).sort().join(",")}`;
}

/** Every gpu-let of a plan, in plan order. */
export function placedGpulets(plan: Plan): PlacedGpulet[] {
  return plan.gpus.flatMap((gpu) => gpu.gpulets.map((g) => ({ gpu: gpu.id, part: g.part, functions: g.functions })));
}

/** Matches gpu-lets of `from` and `to` by identity (first come, first matched for identical ones). */
export function diffPlans(from: Plan, to: Plan): PlanDiff {
  const waiting = new Map<string, PlacedGpulet[]>();
  for (const g of placedGpulets(from)) {
    const k = gpuletKey(g);
    waiting.set(k, [...(waiting.get(k) ?? []), g]);
  }
  const diff: PlanDiff = { start: [], stop: [], keep: [] };
  for (const g of placedGpulets(to)) {
    const match = waiting.get(gpuletKey(g))?.shift();
    if (match) diff.keep.push({ from: match, to: g });
    else diff.start.push(g);
  }
  for (const rest of waiting.values()) diff.stop.push(...rest);
  return diff;
}

/** Gpu-lets started plus gpu-lets stopped between two plans. */
export function gpuletChanges(from: Plan, to: Plan): number {
  const d = diffPlans(from, to);
  return d.start.length + d.stop.length;
}
