/**
 * Fixed gpu-lets: what the fleet runs beside the plan for functions the planner does not size, and the batch
 * a gpu-let takes when no plan (or more than the plan) says. Pure; the fleet does the I/O.
 */
import { chooseBatch } from "../planner/fixed_layout.ts";
import type { PlacedGpulet } from "../planner/plan_diff.ts";

/**
 * Gpu-lets the plan does not size: functions whose model has no latency profile on the device (the planner
 * cannot size what it has not measured), or every function when a fixed layout is asked for. Each such
 * function gets `gpuletsPerFunction` gpu-lets of `part` % (spread over the devices), at the largest batch
 * its warm-up latency fits in the SLO.
 */
export interface FixedLayout {
  gpuletsPerFunction: number;
  part: number;
  /** Every function fixed (`--gpulets-per-function`), not only the unprofiled ones. */
  all: boolean;
}

/** By default: unprofiled functions only, one gpu-let each of a quarter of a device. */
export const DEFAULT_FIXED_LAYOUT: FixedLayout = { gpuletsPerFunction: 1, part: 25, all: false };

/** The batch a fixed gpu-let lists until its warm-up says (0: not chosen yet). */
export const FIXED_BATCH = 0;

/**
 * The fixed gpu-lets of `functions` as a plan would list them: `gpuletsPerFunction` each, spread over the
 * devices, rate 0, batch {@link FIXED_BATCH}.
 */
export function fixedGpulets(
  functions: readonly { name: string; deadlineMs: number }[],
  layout: FixedLayout,
  gpus: number,
): PlacedGpulet[] {
  return functions.flatMap((f, k) =>
    Array.from({ length: layout.gpuletsPerFunction }, (_, i) => ({
      gpu: (k + i) % gpus,
      part: layout.part,
      functions: [{ name: f.name, batch: FIXED_BATCH, dutyMs: f.deadlineMs, rate: 0, latencyMs: f.deadlineMs }],
    }))
  );
}

/** True for a gpu-let {@link fixedGpulets} made. */
export function isFixedGpulet(g: PlacedGpulet): boolean {
  return g.functions.some((f) => f.batch === FIXED_BATCH);
}

/**
 * The largest batch a gpu-let takes. The plan's batch is what it runs at the planned rate; a gpu-let of one
 * function may take more in a burst beyond the plan (before the autoscaler catches up): up to the largest
 * batch whose warm-up latency fits twice in the deadline, as a fixed gpu-let does. A time-shared gpu-let
 * keeps the plan's batches, or its neighbours' turns would come later than planned.
 */
export function slotBatch(
  planned: number,
  functionsOnGpulet: number,
  warmLatencyMs: Record<string, number>,
  deadlineMs: number,
  maxBatch: number,
): number {
  const fits = chooseBatch(warmLatencyMs, deadlineMs, maxBatch);
  if (planned === FIXED_BATCH) return fits;
  return functionsOnGpulet === 1 ? Math.max(planned, fits) : planned;
}
