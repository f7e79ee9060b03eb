/**
 * What `simulate --plan` replays: a fixed plan's GPUs as request-level gpu-lets (pure). A plan is either the
 * planner's plan JSON (`plan --json`; models and SLOs come from the workload it was made for), or the job
 * format of `../shared/tools/gpu_replay/` (one GPU, each function with its model and SLO), so the same file
 * can be replayed here and on a real GPU.
 */
import { z } from "zod";
import { describeZodError } from "../functions/manifest.ts";
import { Plan } from "../planner/plan.ts";
import type { LatencyTable } from "../planner/sizing.ts";
import { type Workload, WorkloadError } from "../planner/workload.ts";
import type { FunctionReplay, ReplayGpulet } from "./request_sim.ts";

/** The GPU replay harness's job: one GPU's gpu-lets, each function with its model and SLO. */
export const ReplayJob = z.object({
  gpulets: z.array(z.object({
    part: z.number().positive().max(100),
    functions: z.array(z.object({
      name: z.string(),
      model: z.string(),
      batch: z.number().int().min(1),
      rate: z.number().nonnegative(),
      sloMs: z.number().positive(),
    })),
  })).min(1),
});

/** The GPUs of a plan file (plan JSON with its workload, or a replay job), as replayable gpu-lets. */
export function replayGpus(json: unknown, workload: Workload | undefined, source: string): ReplayGpulet[][] {
  const job = ReplayJob.safeParse(json);
  if (job.success) return [job.data.gpulets];
  const plan = Plan.safeParse(json);
  if (!plan.success) {
    throw new WorkloadError(
      `${source}: neither a plan (plan --json) nor a replay job: ${describeZodError(plan.error)}`,
    );
  }
  if (!workload) throw new WorkloadError(`${source}: a plan needs --workload (its functions' models and SLOs)`);
  const byName = new Map(workload.functions.map((f) => [f.name, f]));
  for (const f of plan.data.gpus.flatMap((g) => g.gpulets.flatMap((l) => l.functions))) {
    if (!byName.has(f.name)) throw new WorkloadError(`${source}: function ${f.name} is not in the workload`);
  }
  return plan.data.gpus.map((g) => planGpulets(g, byName));
}

/** A plan's GPU as replayable gpu-lets, each function with its model and SLO (functions not known are left out). */
export function planGpulets(
  gpu: PlanGpu,
  functions: ReadonlyMap<string, { model: string; sloMs: number }>,
): ReplayGpulet[] {
  return gpu.gpulets.map((l) => ({
    part: l.part,
    functions: l.functions.flatMap((f) => {
      const fn = functions.get(f.name);
      return fn ? [{ name: f.name, model: fn.model, batch: f.batch, rate: f.rate, sloMs: fn.sloMs }] : [];
    }),
  }));
}

/**
 * One GPU's gpu-lets as a plan's GPU (and each function's model), so the validator's rules can be applied
 * to a replay job: its batches and rates (× `rateScale`), each batch's solo latency from `table`, a
 * placeholder cycle.
 */
export function jobAsPlanGpu(
  gpulets: readonly ReplayGpulet[],
  table: LatencyTable,
  rateScale = 1,
): { gpu: PlanGpu; models: Map<string, string> } {
  const gpu: PlanGpu = {
    id: 0,
    gpulets: gpulets.map((g) => ({
      part: g.part,
      functions: g.functions.map((f) => ({
        name: f.name,
        batch: f.batch,
        dutyMs: 1,
        rate: f.rate * rateScale,
        latencyMs: table.latency(f.model, g.part, f.batch),
      })),
    })),
  };
  return { gpu, models: new Map(gpulets.flatMap((g) => g.functions.map((f) => [f.name, f.model] as const))) };
}

type PlanGpu = Plan["gpus"][number];

/** A replay as a readable table: per gpu-let and function, n, p50, p99, within SLO; then overall. */
export function formatReplay(gpus: readonly FunctionReplay[][]): string {
  const lines = ["gpu  part  function              batch   rate/s       n   p50 ms   p99 ms   SLO ms  within  busy"];
  let n = 0, within = 0;
  gpus.forEach((fns, g) => {
    for (const f of fns) {
      n += f.n;
      within += f.within * f.n;
      lines.push(
        `${String(g).padStart(3)}  ${String(f.part).padStart(4)}  ${f.name.padEnd(20)}  ${
          String(f.batch).padStart(5)
        }  ${f.rate.toFixed(1).padStart(7)}  ${String(f.n).padStart(6)}  ${f.p50Ms.toFixed(2).padStart(7)}  ${
          f.p99Ms.toFixed(2).padStart(7)
        }  ${f.sloMs.toFixed(1).padStart(7)}  ${(100 * f.within).toFixed(1).padStart(5)} %  ${f.busy.toFixed(2)}`,
      );
    }
  });
  lines.push(`${n} requests, ${(100 * (n ? within / n : 1)).toFixed(2)} % within SLO`);
  return lines.join("\n");
}
