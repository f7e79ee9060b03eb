/**
 * The interference model: how much slower gpu-let A (model a at part pa) runs next to gpu-let B (model b at
 * part pb) on one device, at batch size `batch`. Fitted from a pairs file, and able to place models that
 * appear in no pair: every term comes from what the solo profile says about each model.
 *
 *   slowdown(a@pa | b@pb) = 1 + S(a, pa) · P(b, pb)
 *   S = exp(w0 + w1·ln(pa/100) + w2·ln(L_a(50)/L_a(100)))      sensitivity of the victim
 *   P = σ(w3 + w4·ln L_b(100)) · exp(w5·ln(pb/100))             pressure of the neighbour
 *
 * Why these features: a model whose latency barely improves from half to the whole device is bound by memory
 * or launch latency, and suffers most from a neighbour; the neighbour's pressure grows with the work it
 * pushes through the device per batch (its full-device latency, saturating) and with its share of it. The
 * original fitted a line on Nsight L2/DRAM utilisations, which need a profiler run per model on the GPU.
 *
 * Where a pair was measured, the prediction is scaled by the measured/predicted ratio of that pair, so known
 * pairs are reproduced and the formula only has to generalise to unknown ones. Predictions are capped at the
 * largest slowdown the fit saw: a model unlike any fitted one is not extrapolated into nonsense.
 */
import type { LatencyModel } from "./latency_model.ts";
import { fitWithRestarts } from "./least_squares.ts";
import type { Observation } from "./pairs.ts";

/** Number of weights of the formula above. */
const WEIGHTS = 6;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Solo-profile features of one gpu-let. */
export interface GpuletFeatures {
  /** ln(part / 100). */
  logShare: number;
  /** ln(L(50 %) / L(100 %)) at this batch: how little the model gains from more of the device. */
  logScaling: number;
  /** ln L(100 %) at this batch (ms). */
  logFullLatency: number;
}

/** Features of `model` at `part` and `batch`, from the latency model (throws outside the profile). */
export function gpuletFeatures(latency: LatencyModel, model: string, part: number, batch: number): GpuletFeatures {
  const full = latency.latency(model, 100, batch);
  return {
    logShare: Math.log(part / 100),
    logScaling: Math.log(latency.latency(model, 50, batch) / full),
    logFullLatency: Math.log(full),
  };
}

/** The formula, from features and weights. */
export function predictSlowdown(w: readonly number[], a: GpuletFeatures, b: GpuletFeatures): number {
  const sensitivity = Math.exp(w[0] + w[1] * a.logShare + w[2] * a.logScaling);
  const pressure = sigmoid(w[3] + w[4] * b.logFullLatency) * Math.exp(w[5] * b.logShare);
  return 1 + sensitivity * pressure;
}

/** A fitted model, serialisable. */
export interface InterferenceParams {
  weights: number[];
  /** `"a|b"` → measured/predicted ratio of (slowdown − 1), for pairs that were measured. */
  corrections: Record<string, number>;
  /** The largest slowdown seen in the fit: predictions are capped there rather than extrapolated. */
  maxSlowdown: number;
}

/** A batch running on a gpu-let: its model, the gpu-let's part and the batch's rows. */
export interface RunningBatch {
  model: string;
  part: number;
  batch: number;
}

/**
 * Share of the pairwise model's added slowdown a batch sees from a neighbour that runs at the same moment:
 * the pairs were measured with both sides always busy, and on the H200 the request-level simulator matched
 * the replays best at half of it (`bench/request_sim_calibration.ts`).
 */
export const CONCURRENT_SCALE = 0.5;

/** Predicts co-location slowdowns. */
export class InterferenceModel {
  constructor(private readonly latency: LatencyModel, readonly params: InterferenceParams) {}

  /**
   * Fits weights on observations (both directions of each measured pair), minimising the relative error of
   * the co-located latency. Deterministic.
   */
  static fit(latency: LatencyModel, obs: readonly Observation[]): InterferenceModel {
    if (obs.length < WEIGHTS) throw new Error(`need at least ${WEIGHTS} co-location observations, got ${obs.length}`);
    const feats = obs.map((o) => ({
      a: gpuletFeatures(latency, o.model, o.part, o.batch),
      b: gpuletFeatures(latency, o.other, o.otherPart, o.batch),
      y: o.slowdown,
    }));
    const residuals = (w: number[]) =>
      feats.map(({ a, b, y }) => {
        const p = predictSlowdown(w, a, b);
        return Number.isFinite(p) ? (p - y) / y : 1e3;
      });
    const fit = fitWithRestarts(residuals, [-1, 0, 0, 0, 1, 0.5], { restarts: 12, spread: 2, seed: 7 });
    const weights = fit.params;
    // Per measured pair: how far the formula is from what was measured.
    const sums = new Map<string, { measured: number; predicted: number }>();
    feats.forEach((f, i) => {
      const key = `${obs[i].model}|${obs[i].other}`;
      const s = sums.get(key) ?? { measured: 0, predicted: 0 };
      s.measured += f.y - 1;
      s.predicted += predictSlowdown(weights, f.a, f.b) - 1;
      sums.set(key, s);
    });
    const corrections: Record<string, number> = {};
    for (const [key, s] of sums) {
      if (s.predicted > 1e-6) corrections[key] = Math.min(3, Math.max(1 / 3, s.measured / s.predicted));
    }
    const maxSlowdown = Math.max(...obs.map((o) => o.slowdown));
    return new InterferenceModel(latency, { weights, corrections, maxSlowdown });
  }

  /** Slowdown (≥ 1) of `model` at `part` next to `other` at `otherPart`, both at `batch`. */
  slowdown(model: string, part: number, other: string, otherPart: number, batch: number): number {
    return this.slowdownAt(model, part, batch, other, otherPart, batch);
  }

  /**
   * Slowdown (≥ 1) of `model` at `part` running batches of `batch` next to `other` at `otherPart` running
   * batches of `otherBatch`: each side's features at its own batch (the planner's case).
   */
  slowdownAt(model: string, part: number, batch: number, other: string, otherPart: number, otherBatch: number): number {
    const a = gpuletFeatures(this.latency, model, part, batch);
    const b = gpuletFeatures(this.latency, other, otherPart, otherBatch);
    const base = predictSlowdown(this.params.weights, a, b) - 1;
    const c = this.params.corrections[`${model}|${other}`] ?? 1;
    return Math.min(this.params.maxSlowdown, 1 + Math.max(0, base * c));
  }

  /**
   * Slowdown of a batch next to the batches its neighbours (other gpu-lets) run at the same moment: each
   * neighbour adds its pairwise slowdown − 1, × `scale` (default {@link CONCURRENT_SCALE}). The rule of the
   * simulated devices and of the request-level simulator.
   */
  concurrent(self: RunningBatch, neighbours: Iterable<RunningBatch>, scale = CONCURRENT_SCALE): number {
    let alpha = 1;
    for (const o of neighbours) {
      alpha += scale * (this.slowdownAt(self.model, self.part, self.batch, o.model, o.part, o.batch) - 1);
    }
    return alpha;
  }

  /** Both directions: [slowdown of a, slowdown of b]. */
  pair(modelA: string, partA: number, modelB: string, partB: number, batch: number): [number, number] {
    return [this.slowdown(modelA, partA, modelB, partB, batch), this.slowdown(modelB, partB, modelA, partA, batch)];
  }
}

/** Cross-validation errors for one left-out model and overall. */
export interface CrossValidation {
  perModel: {
    model: string;
    n: number;
    meanAbsSlowdown: number;
    maxAbsSlowdown: number;
    meanPct: number;
    maxPct: number;
  }[];
  overall: { n: number; meanAbsSlowdown: number; maxAbsSlowdown: number; meanPct: number; maxPct: number };
}

/** Summary of absolute errors: slowdown units and % of the co-located latency. */
function summarise(errors: { abs: number; pct: number }[]) {
  return {
    n: errors.length,
    meanAbsSlowdown: errors.reduce((s, e) => s + e.abs, 0) / errors.length,
    maxAbsSlowdown: Math.max(...errors.map((e) => e.abs)),
    meanPct: errors.reduce((s, e) => s + e.pct, 0) / errors.length,
    maxPct: Math.max(...errors.map((e) => e.pct)),
  };
}

/**
 * Leave-one-model-out: for each model, fit on the observations that do not involve it and predict the ones
 * that do (as victim or as neighbour). `fit` defaults to `InterferenceModel.fit`.
 */
export function leaveOneModelOut(
  latency: LatencyModel,
  obs: readonly Observation[],
  fit: (train: Observation[]) => { slowdown: InterferenceModel["slowdown"] } = (train) =>
    InterferenceModel.fit(latency, train),
): CrossValidation {
  const models = [...new Set(obs.flatMap((o) => [o.model, o.other]))].sort();
  const all: { abs: number; pct: number }[] = [];
  const perModel = models.map((m) => {
    const train = obs.filter((o) => o.model !== m && o.other !== m);
    const test = obs.filter((o) => o.model === m || o.other === m);
    const model = fit(train);
    const errors = test.map((o) => {
      const p = model.slowdown(o.model, o.part, o.other, o.otherPart, o.batch);
      return { abs: Math.abs(p - o.slowdown), pct: (100 * Math.abs(p - o.slowdown)) / o.slowdown };
    });
    all.push(...errors);
    return { model: m, ...summarise(errors) };
  });
  return { perModel, overall: summarise(all) };
}
