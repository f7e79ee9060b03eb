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
import { meanOneLognormal, nextGapMs } from "../loadgen/arrivals.ts";
import { seededRandom } from "../planner/random.ts";
import { latencyStats } from "../loadgen/stats.ts";
import type { InterferenceModel } from "../planner/interference.ts";
import { preparedSizes } from "../planner/batch_chain.ts";
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
 * Service-time spread (CV of a batch's time around its profiled latency, on top of the interference of the
 * neighbours running at that moment); the simulated devices use the same. Fitted to the p99 latencies of
 * the H200 replays (`bench/results/gpu_replay*`, 400 functions): 0.15 overstates them by 2 % on average at
 * batch 1–3 and 7 % at batch 4 and above; 0.1 fits closer on average but errs low more often, and the
 * planner's 0.2 (`SERVICE_SPREAD`) overstated them by 5–12 %. A neighbour running at the same moment costs its
 * full pairwise slowdown: the interference model is fitted to what neighbours cost while they run
 * (`bench/request_sim_calibration.ts` measures it against the H200 replays).
 */
export const DEFAULT_SPREAD = 0.15;

interface Job {
  fn: number;
  model: string;
  part: number;
  /** Rows it runs at: the prepared size its requests were padded to. */
  batch: number;
  /** Solo work left (ms). */
  remaining: number;
  speed: number;
  arrivals: number[];
  tags: number[];
  startedAt: number;
}

/** What the engine needs besides the gpu-lets. */
export interface EngineOptions {
  random: () => number;
  spread?: number;
  /**
   * Called for every answered request: function index (in gpu-let order), arrival and latency (ms), and
   * the tag it arrived with (an app request's id; -1 for none).
   */
  onAnswer?: (fn: number, arrivalMs: number, latencyMs: number, tag: number) => void;
}

/**
 * One GPU's gpu-lets, request by request, fed arrivals in time order (so a caller can route a live stream
 * to it, as the autoscaling simulator does). Functions are numbered in gpu-let order, then within each.
 */
export class GpuEngine {
  readonly fns: (ReplayFunction & { gpulet: number; part: number })[];
  readonly busyMs: number[];
  readonly rows: number[];
  readonly batches: number[];
  private readonly sizes: number[][];
  private readonly queues: number[][];
  private readonly tags: number[][];
  private readonly fnIndex: number[][];
  private readonly turn: number[];
  private readonly running: (Job | undefined)[];
  private now = 0;
  private readonly spread: number;

  constructor(
    gpulets: readonly ReplayGpulet[],
    private readonly latency: LatencyModel,
    private readonly interference: InterferenceModel | undefined,
    private readonly opts: EngineOptions,
  ) {
    this.fns = gpulets.flatMap((g, gi) => g.functions.map((f) => ({ ...f, gpulet: gi, part: g.part })));
    // A model, part or batch outside the profile is an error now, not at its first batch.
    for (const f of this.fns) latency.latency(f.model, f.part, f.batch);
    this.spread = opts.spread ?? DEFAULT_SPREAD;
    this.sizes = this.fns.map((f) => preparedSizes(f.batch));
    this.queues = this.fns.map(() => []);
    this.tags = this.fns.map(() => []);
    this.busyMs = this.fns.map(() => 0);
    this.rows = this.fns.map(() => 0);
    this.batches = this.fns.map(() => 0);
    this.fnIndex = gpulets.map((_, gi) => this.fns.flatMap((f, i) => (f.gpulet === gi ? [i] : [])));
    this.turn = gpulets.map(() => 0);
    this.running = gpulets.map(() => undefined);
  }

  /** A request of function `fn` arrives at `t` (not before the previous one), with an optional `tag`. */
  arrive(fn: number, t: number, tag = -1): void {
    this.runUntil(t);
    this.advanceTo(t);
    this.queues[fn].push(t);
    this.tags[fn].push(tag);
    const gi = this.fns[fn].gpulet;
    if (!this.running[gi] && this.startNext(gi, t)) this.respeed();
  }

  /** When the next running batch ends (ms; Infinity when none runs). */
  nextEndMs(): number {
    return this.nextEnd().end;
  }

  private nextEnd(): { end: number; gpulet: number } {
    let end = Infinity, gpulet = -1;
    for (let gi = 0; gi < this.running.length; gi++) {
      const j = this.running[gi];
      if (j && this.now + j.remaining / j.speed < end) [end, gpulet] = [this.now + j.remaining / j.speed, gi];
    }
    return { end, gpulet };
  }

  /** Finishes every batch that ends by `t`. */
  runUntil(t: number): void {
    for (;;) {
      const { end, gpulet } = this.nextEnd();
      if (gpulet < 0 || end > t) return;
      this.advanceTo(end);
      const j = this.running[gpulet]!;
      this.running[gpulet] = undefined;
      j.arrivals.forEach((a, k) => this.opts.onAnswer?.(j.fn, a, end - a, j.tags[k]));
      this.busyMs[j.fn] += end - j.startedAt;
      this.rows[j.fn] += j.arrivals.length;
      this.batches[j.fn]++;
      this.startNext(gpulet, end);
      this.respeed();
    }
  }

  /** Serves everything queued. */
  drain(): void {
    this.runUntil(Infinity);
  }

  /** True when nothing is queued or running. */
  get idle(): boolean {
    return this.running.every((j) => j === undefined) && this.queues.every((q) => q.length === 0);
  }

  private advanceTo(t: number): void {
    for (const j of this.running) if (j) j.remaining -= (t - this.now) * j.speed;
    this.now = t;
  }

  private respeed(): void {
    const interference = this.interference;
    for (const j of this.running) {
      if (!j) continue;
      const others = this.running.filter((o): o is Job => o !== undefined && o !== j);
      j.speed = interference ? 1 / interference.concurrent(j, others, this.running.length - 1) : 1;
    }
  }

  /** Starts the next batch on an idle gpu-let, if any function of it has requests waiting. */
  private startNext(gi: number, now: number): boolean {
    const mine = this.fnIndex[gi];
    for (let k = 0; k < mine.length; k++) {
      const i = mine[(this.turn[gi] + k) % mine.length];
      if (this.queues[i].length === 0) continue;
      this.turn[gi] = (this.turn[gi] + k + 1) % mine.length;
      const f = this.fns[i];
      const take = this.queues[i].splice(0, f.batch);
      const tags = this.tags[i].splice(0, f.batch);
      const size = this.sizes[i].find((s) => s >= take.length) ?? f.batch;
      const solo = this.latency.latency(f.model, f.part, size);
      this.running[gi] = {
        fn: i,
        model: f.model,
        part: f.part,
        batch: size,
        remaining: solo * meanOneLognormal(this.spread, this.opts.random),
        speed: 1,
        arrivals: take,
        tags,
        startedAt: now,
      };
      return true;
    }
    return false;
  }
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
  const scale = opts.rateScale ?? 1;
  const horizon = opts.seconds * 1000;
  const latencies: number[][] = gpulets.flatMap((g) => g.functions.map(() => []));
  const engine = new GpuEngine(gpulets, latency, interference, {
    random,
    spread: opts.spread,
    onAnswer: (fn, _arrival, ms) => latencies[fn].push(ms),
  });
  const fns = engine.fns;
  // Arrival times per function, generated up front, then fed in time order.
  const arrivals = fns.map((f) => {
    const out: number[] = [];
    const rate = f.rate * scale;
    if (rate <= 0) return out;
    for (let t = nextGapMs(rate, cv, random); t < horizon; t += nextGapMs(rate, cv, random)) out.push(t);
    return out;
  });
  const next = fns.map(() => 0);
  for (;;) {
    let t = Infinity, fn = -1;
    for (let i = 0; i < fns.length; i++) {
      const a = arrivals[i][next[i]];
      if (a !== undefined && a < t) [t, fn] = [a, i];
    }
    if (fn < 0) break;
    next[fn]++;
    engine.arrive(fn, t);
  }
  engine.drain();
  return fns.map((f, i) => {
    const l = latencies[i].sort((a, b) => a - b);
    return {
      name: f.name,
      model: f.model,
      part: f.part,
      batch: f.batch,
      rate: f.rate * scale,
      sloMs: f.sloMs,
      ...latencyStats(l, f.sloMs),
      meanMs: l.length ? l.reduce((a, b) => a + b, 0) / l.length : NaN,
      busy: engine.busyMs[i] / horizon,
      meanRows: engine.batches[i] ? engine.rows[i] / engine.batches[i] : 0,
    };
  });
}
