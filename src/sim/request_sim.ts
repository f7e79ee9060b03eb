/**
 * A request-level simulator of one GPU's gpu-lets, in virtual time (pure, seeded): what a plan's gpu-lets do
 * with random arrivals, the way `../shared/tools/gpu_replay/plan_exec.py` runs a plan on a real GPU.
 *
 * - Each function gets renewal arrivals at its planned rate (Poisson, or Gamma with a chosen CV).
 * - Each gpu-let runs one batch at a time and is work-conserving: when idle it takes up to its batch from
 *   the next function with requests waiting (time-shared gpu-lets take turns, round-robin).
 * - A batch of n rows runs at the smallest prepared batch size ≥ n (the executor's CUDA graphs: powers of two
 *   and the planned batch), with the solo latency of the profile at the gpu-let's part.
 * - Interference follows what the neighbours run at that moment: a running batch progresses at speed
 *   1 / (1 + Σ (slowdown next to each busy neighbour − 1)), recomputed whenever a batch starts or ends (the
 *   rule of the simulated devices).
 * - Service times vary: each batch's work is the solo latency times a lognormal factor (mean 1, CV `spread`),
 *   because on a real GPU a batch's time depends on more than the neighbours' model (clocks, memory, launch).
 */
import { meanOneLognormal, nextGapMs, seededRandom } from "../loadgen/arrivals.ts";
import { percentile } from "../loadgen/stats.ts";
import { CONCURRENT_SCALE, type InterferenceModel } from "../planner/interference.ts";
import { SERVICE_SPREAD } from "../planner/tail.ts";
import type { LatencyModel } from "../planner/latency_model.ts";

/** A function served by a gpu-let, as a replay sees it. */
export interface ReplayFunction {
  name: string;
  model: string;
  batch: number;
  /** Requests per second. */
  rate: number;
  sloMs: number;
}

/** One gpu-let of the GPU. */
export interface ReplayGpulet {
  part: number;
  functions: ReplayFunction[];
}

export interface ReplayOptions {
  /** Virtual seconds of arrivals. */
  seconds: number;
  seed: number;
  /** CV of inter-arrival gaps: 1 = Poisson (default), > 1 burstier (Gamma). */
  cv?: number;
  /** CV of a batch's service time around its profiled latency (default {@link DEFAULT_SPREAD}). */
  spread?: number;
  /** Every rate × this (default 1). */
  rateScale?: number;
  /**
   * Each neighbour's added slowdown (slowdown − 1, from the interference model) × this (default
   * {@link DEFAULT_INTERFERENCE_SCALE}).
   */
  interferenceScale?: number;
}

/** What one function saw. */
export interface FunctionReplay {
  name: string;
  model: string;
  part: number;
  batch: number;
  rate: number;
  sloMs: number;
  n: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Share of requests answered within the SLO. */
  within: number;
  /** Share of the time its gpu-let ran its batches. */
  busy: number;
  meanRows: number;
}

/**
 * Service-time spread and the share of the interference model's added slowdown, a first fit to the H200
 * replays (`bench/request_sim_calibration.ts`: 9 of 13 runs at ≤ 0.85× their peak within 10 points for ≥ 3
 * of 4 gpu-lets; the spread hardly matters there, the interference scale does). The simulated devices and
 * the planner's tail model use the same values.
 */
export const DEFAULT_SPREAD = SERVICE_SPREAD;
export const DEFAULT_INTERFERENCE_SCALE = CONCURRENT_SCALE;

interface Job {
  gpulet: number;
  fn: number;
  model: string;
  part: number;
  /** Rows it runs at: the prepared size its requests were padded to. */
  batch: number;
  /** Solo work left (ms). */
  remaining: number;
  speed: number;
  arrivals: number[];
  startedAt: number;
}

/** Batch sizes the executor prepares for a planned batch: powers of two below it, and the batch itself. */
export function preparedSizes(batch: number): number[] {
  const sizes = new Set<number>([batch]);
  for (let s = 1; s < batch; s *= 2) sizes.add(s);
  return [...sizes].sort((a, b) => a - b);
}

/** Replays one GPU's gpu-lets; per function what its requests saw. */
export function replayGpu(
  gpulets: readonly ReplayGpulet[],
  latency: LatencyModel,
  interference: InterferenceModel | undefined,
  opts: ReplayOptions,
): FunctionReplay[] {
  const random = seededRandom(opts.seed);
  const cv = opts.cv ?? 1;
  const spread = opts.spread ?? DEFAULT_SPREAD;
  const kappa = opts.interferenceScale ?? DEFAULT_INTERFERENCE_SCALE;
  const scale = opts.rateScale ?? 1;
  const horizon = opts.seconds * 1000;
  const fns = gpulets.flatMap((g, gi) => g.functions.map((f, fi) => ({ ...f, gpulet: gi, index: fi, part: g.part })));
  // Arrival times per function, generated up front.
  const arrivals = fns.map((f) => {
    const out: number[] = [];
    const rate = f.rate * scale;
    if (rate <= 0) return out;
    for (let t = nextGapMs(rate, cv, random); t < horizon; t += nextGapMs(rate, cv, random)) out.push(t);
    return out;
  });
  const sizes = fns.map((f) => preparedSizes(f.batch));
  const next = fns.map(() => 0); // next arrival not yet queued, per function
  const queues: number[][] = fns.map(() => []);
  const latencies: number[][] = fns.map(() => []);
  const busyMs = fns.map(() => 0);
  const rows = fns.map(() => 0);
  const batches = fns.map(() => 0);
  const fnIndex = gpulets.map((_, gi) => fns.flatMap((f, i) => (f.gpulet === gi ? [i] : [])));
  const turn = gpulets.map(() => 0);
  const running: (Job | undefined)[] = gpulets.map(() => undefined);

  const slowdownOf = (j: Job): number =>
    interference ? interference.concurrent(j, running.filter((o): o is Job => o !== undefined && o !== j), kappa) : 1;
  const respeed = () => {
    for (const j of running) if (j) j.speed = 1 / slowdownOf(j);
  };
  /** Starts the next batch on an idle gpu-let, if any function of it has requests waiting. */
  const startNext = (gi: number, now: number): boolean => {
    const mine = fnIndex[gi];
    for (let k = 0; k < mine.length; k++) {
      const i = mine[(turn[gi] + k) % mine.length];
      if (queues[i].length === 0) continue;
      turn[gi] = (turn[gi] + k + 1) % mine.length;
      const f = fns[i];
      const take = queues[i].splice(0, f.batch);
      const size = sizes[i].find((s) => s >= take.length) ?? f.batch;
      const solo = latency.latency(f.model, f.part, size);
      running[gi] = {
        gpulet: gi,
        fn: i,
        model: f.model,
        part: f.part,
        batch: size,
        remaining: solo * meanOneLognormal(spread, random),
        speed: 1,
        arrivals: take,
        startedAt: now,
      };
      return true;
    }
    return false;
  };

  let now = 0;
  for (;;) {
    // The next event: an arrival, or a running batch's end at its current speed.
    let nextArrival = Infinity, arrivalFn = -1;
    for (let i = 0; i < fns.length; i++) {
      const t = arrivals[i][next[i]];
      if (t !== undefined && t < nextArrival) {
        nextArrival = t;
        arrivalFn = i;
      }
    }
    let nextEnd = Infinity, endGpulet = -1;
    for (let gi = 0; gi < running.length; gi++) {
      const j = running[gi];
      if (j && now + j.remaining / j.speed < nextEnd) {
        nextEnd = now + j.remaining / j.speed;
        endGpulet = gi;
      }
    }
    const t = Math.min(nextArrival, nextEnd);
    if (!Number.isFinite(t)) break;
    for (const j of running) if (j) j.remaining -= (t - now) * j.speed;
    now = t;
    let changed = false;
    if (nextEnd <= nextArrival) {
      const j = running[endGpulet]!;
      running[endGpulet] = undefined;
      for (const a of j.arrivals) latencies[j.fn].push(now - a);
      busyMs[j.fn] += now - j.startedAt;
      rows[j.fn] += j.arrivals.length;
      batches[j.fn]++;
      startNext(endGpulet, now);
      changed = true;
    } else {
      queues[arrivalFn].push(nextArrival);
      next[arrivalFn]++;
      const gi = fns[arrivalFn].gpulet;
      if (!running[gi]) changed = startNext(gi, now);
    }
    if (changed) respeed();
  }

  return fns.map((f, i) => {
    const l = latencies[i].sort((a, b) => a - b);
    return {
      name: f.name,
      model: f.model,
      part: f.part,
      batch: f.batch,
      rate: f.rate * scale,
      sloMs: f.sloMs,
      n: l.length,
      meanMs: l.length ? l.reduce((a, b) => a + b, 0) / l.length : NaN,
      p50Ms: percentile(l, 0.5) ?? NaN,
      p99Ms: percentile(l, 0.99) ?? NaN,
      within: l.length ? l.filter((x) => x <= f.sloMs).length / l.length : 1,
      busy: busyMs[i] / horizon,
      meanRows: batches[i] ? rows[i] / batches[i] : 0,
    };
  });
}
