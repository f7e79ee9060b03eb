/**
 * Admission's estimates from the gpu-lets' measured latencies: when a request arriving now would be answered
 * (the door's 429), and the least time a queued request still needs (the early 504). Pure.
 */
import type { DrainRate } from "./drain_rate.ts";
import type { Executor } from "../runtime/executor.ts";
import type { LatencyEstimate } from "./latency.ts";

/** What the estimates read of a slot. */
interface EstimatedSlot {
  worker: Executor;
  batch: number;
  latency: LatencyEstimate;
}

/**
 * When the last of `ahead` rows (the queue, and the new request's) would be answered (ms from now): once the
 * first gpu-let is free, at the gpu-lets' measured throughput; 0 while no gpu-let serves (nothing to go by).
 * `busyUntil`: when each gpu-let's batches in flight should be done (performance.now() ms).
 */
export function predictedFinishMs(
  slots: readonly EstimatedSlot[],
  busyUntil: ReadonlyMap<Executor, number>,
  drainRate: DrainRate,
  ahead: number,
  now: number,
): number {
  let rowsPerMs = 0;
  let firstFree = Infinity;
  for (const s of slots) {
    rowsPerMs += s.batch / Math.max(1e-3, s.latency.estimate(s.batch));
    firstFree = Math.min(firstFree, Math.max(0, (busyUntil.get(s.worker) ?? now) - now));
  }
  if (rowsPerMs === 0) return 0;
  rowsPerMs = drainRate.plannable(rowsPerMs);
  return firstFree + Math.max(ahead / rowsPerMs, fastestEstimate(slots, Math.min(ahead, slots[0].batch)));
}

function fastestEstimate(slots: readonly EstimatedSlot[], batch: number): number {
  let best = Infinity;
  for (const s of slots) best = Math.min(best, s.latency.estimate(batch));
  return Number.isFinite(best) ? best : 0;
}

/**
 * The least time a request still needs: the fastest any batch has run, not the average. Under a noisy
 * neighbour the average overstates it, and expiring a request that would still have made it is a false
 * refusal.
 */
export function leastLatencyMs(slots: readonly EstimatedSlot[]): number {
  let least = Infinity;
  for (const s of slots) least = Math.min(least, s.latency.lowerBoundMs());
  return Number.isFinite(least) ? least : 0;
}
