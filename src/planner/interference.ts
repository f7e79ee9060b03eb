/**
 * The interference model: how much slower gpu-let A (model a at part pa, batches of ba) runs next to gpu-let
 * B (model b at part pb, batches of bb) on one device. Fitted from a pairs file, and able to place models
 * and splits that appear in no pair: every term comes from what the solo profile says about each side.
 *
 *   slowdown(a | b) = 1 + K(a, b) · D_a^½ · D_b           both sides busy (how pairs are measured)
 *   D_m = L_m(100 %, b_m) / L_m(p_m, b_m)                  m's demand: the share of the whole device's speed
 *                                                          it reaches at its part (≤ 1)
 *   K(a, b) = exp(w0 + w1·s_a + w2·f_a) · σ(w3 + w4·f_b + w5·s_b)
 *   s = ln(L(50 %)/L(100 %)), f = ln L(100 %), each at its own batch
 *
 * Why this shape: a neighbour presses on the shared memory system in proportion to the work it pushes
 * through the device, which its demand D measures straight from the solo profile; a victim that reaches
 * more of the device's speed is exposed to more of that pressure. No term is free per split, so pairs
 * measured at one split (the H200's 50/50) transfer to others: on the H100, fitted on 50/50 and tested on
 * 30/70 (and back), 2.5 % mean error against 4.9 % for the measured 50/50 slowdown taken as is and 7.0 %
 * for a flat margin (`bench interference`). The victim's exponent ½ is the best of 0–1 there.
 *
 * Where a pair was measured, K is scaled by the measured/predicted ratio of that pair, so known pairs are
 * reproduced at their split and carried to other splits and batches through D; the formula only has to
 * generalise to unknown models.
 *
 * Several neighbours add up, each weighted by the share of time it is busy (`alongside`: the planner's rule,
 * from the rates it assigns; `concurrent`: the simulators' rule, from what runs at that moment), and every
 * other client on the device adds a fixed {@link CLIENT_OVERHEAD_MS} per batch (MPS launch contention,
 * visible on 0.04 ms LeNet batches). Fitted on the H200 replays, leave-one-mix-out.
 */
import { type Residual, residualFactor } from "./colocated.ts";
import type { LatencyModel } from "./latency_model.ts";
import { fitWithRestarts } from "./least_squares.ts";
import type { Observation } from "./pairs.ts";

/** Number of weights of the formula above. */
const WEIGHTS = 6;

/** Exponent of the victim's demand in the formula above. */
const VICTIM_DEMAND_EXPONENT = 0.5;

/**
 * Time added to every batch by each other client of the device (ms), whether or not it runs at that moment:
 * LeNet's 0.04 ms batches ran 0.02–0.05 ms longer next to three to six idle gpu-lets on the H200, which no
 * share of bandwidth explains. Fitted on the H200 replays (0.004–0.006 leaving out one mix at a time).
 */
const CLIENT_OVERHEAD_MS = 0.005;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Solo-profile features of one gpu-let. */
interface GpuletFeatures {
  /** ln(L(50 %) / L(100 %)) at this batch: how little the model gains from more of the device. */
  logScaling: number;
  /** ln L(100 %) at this batch (ms). */
  logFullLatency: number;
  /** L(100 %) / L(part) at this batch: the share of the device's speed the gpu-let reaches (its demand). */
  demand: number;
}

/** Features of `model` at `part` and `batch`, from the latency model (throws outside the profile). */
function gpuletFeatures(latency: LatencyModel, model: string, part: number, batch: number): GpuletFeatures {
  const full = latency.latency(model, 100, batch);
  return {
    logScaling: Math.log(latency.latency(model, 50, batch) / full),
    logFullLatency: Math.log(full),
    demand: full / latency.latency(model, part, batch),
  };
}

/** K(a, b) of the formula above, from features and weights. */
function pairFactor(w: readonly number[], a: GpuletFeatures, b: GpuletFeatures): number {
  return Math.exp(w[0] + w[1] * a.logScaling + w[2] * a.logFullLatency) *
    sigmoid(w[3] + w[4] * b.logFullLatency + w[5] * b.logScaling);
}

/** The demand term D_a^½ · D_b. */
function demandTerm(a: GpuletFeatures, b: GpuletFeatures): number {
  return Math.pow(a.demand, VICTIM_DEMAND_EXPONENT) * b.demand;
}

/** The formula's slowdown (both sides busy), from features and weights. */
function predictSlowdown(w: readonly number[], a: GpuletFeatures, b: GpuletFeatures): number {
  return 1 + pairFactor(w, a, b) * demandTerm(a, b);
}

/** A fitted model, serialisable. */
export interface InterferenceParams {
  weights: number[];
  /** `"a|b"` → measured/predicted ratio of (slowdown − 1), for pairs that were measured. */
  corrections: Record<string, number>;
  /**
   * Cap on predictions: twice the largest added slowdown the fit saw. Demands are at most 1, so a known
   * pair cannot grow past it; the cap keeps a model unlike any fitted one from being extrapolated into
   * nonsense.
   */
  maxSlowdown: number;
  /** Per batch, per other client of the device (ms); default {@link CLIENT_OVERHEAD_MS}. */
  clientOverheadMs?: number;
  /** Per model, what whole plans on the real GPU showed beyond the pairs (`colocated.ts`); none: 1. */
  residuals?: Record<string, Residual>;
}

/** A batch running on a gpu-let: its model, the gpu-let's part and the batch's rows. */
export interface RunningBatch {
  model: string;
  part: number;
  batch: number;
}

/** A neighbour gpu-let as the planner sees it: its part and each function's batch and busy share. */
export interface NeighbourLoad {
  part: number;
  functions: { model: string; batch: number; /** Share of time it runs batches (0–1). */ busy: number }[];
}

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
    const fit = fitWithRestarts(residuals, [-1, 0, 0, 0, 1, 0], { restarts: 12, spread: 2, seed: 7 });
    const weights = fit.params;
    // Per measured pair: how far the formula is from what was measured (over all its splits).
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
    const maxSlowdown = 1 + 2 * Math.max(0, ...obs.map((o) => o.slowdown - 1));
    return new InterferenceModel(latency, { weights, corrections, maxSlowdown });
  }

  /** Slowdown (≥ 1) of `model` at `part` next to `other` at `otherPart`, both busy at `batch`. */
  slowdown(model: string, part: number, other: string, otherPart: number, batch: number): number {
    return this.slowdownAt(model, part, batch, other, otherPart, batch);
  }

  /**
   * Slowdown (≥ 1) of `model` at `part` running batches of `batch` next to `other` at `otherPart` running
   * batches of `otherBatch`, both always busy: each side's features at its own batch.
   */
  slowdownAt(model: string, part: number, batch: number, other: string, otherPart: number, otherBatch: number): number {
    const a = gpuletFeatures(this.latency, model, part, batch);
    const b = gpuletFeatures(this.latency, other, otherPart, otherBatch);
    const base = predictSlowdown(this.params.weights, a, b) - 1;
    const c = this.params.corrections[`${model}|${other}`] ?? 1;
    return Math.min(this.params.maxSlowdown, 1 + Math.max(0, base * c));
  }

  /** The same model with the residuals of whole plans measured on the device (`colocated.ts`). */
  withResiduals(residuals: Record<string, Residual>): InterferenceModel {
    return new InterferenceModel(this.latency, { ...this.params, residuals });
  }

  /** The client overhead × `clients`, as a factor on `self`'s solo batch latency. */
  overheadFactor(self: RunningBatch, clients: number): number {
    if (clients <= 0) return 0;
    const ms = this.params.clientOverheadMs ?? CLIENT_OVERHEAD_MS;
    return (clients * ms) / this.latency.latency(self.model, self.part, self.batch);
  }

  /**
   * Expected slowdown of `self` next to neighbour gpu-lets that are busy part of the time: each function of
   * each neighbour adds its busy share × (pairwise slowdown − 1), each neighbour the client overhead. The
   * planner's rule; `pairwise` may supply (memoised) pairwise slowdowns. With neighbours, the model's residual
   * from whole plans on the device multiplies it.
   */
  alongside(
    self: RunningBatch,
    neighbours: readonly NeighbourLoad[],
    pairwise: (self: RunningBatch, other: RunningBatch) => number = (s, o) =>
      this.slowdownAt(s.model, s.part, s.batch, o.model, o.part, o.batch),
  ): number {
    let alpha = 1 + this.overheadFactor(self, neighbours.length);
    for (const n of neighbours) {
      for (const f of n.functions) {
        if (f.busy <= 0) continue;
        alpha += Math.min(1, f.busy) * (pairwise(self, { model: f.model, part: n.part, batch: f.batch }) - 1);
      }
    }
    return neighbours.length > 0 ? alpha * residualFactor(this.params.residuals, self.model, self.batch) : alpha;
  }

  /**
   * Slowdown of a batch next to the batches its neighbours (other gpu-lets) run at the same moment, on a
   * device with `clients` other gpu-lets: each running neighbour adds its pairwise slowdown − 1, each client
   * the overhead. The rule of the simulated devices and of the request-level simulator.
   */
  concurrent(self: RunningBatch, running: Iterable<RunningBatch>, clients: number): number {
    let alpha = 1 + this.overheadFactor(self, clients);
    for (const o of running) alpha += this.slowdownAt(self.model, self.part, self.batch, o.model, o.part, o.batch) - 1;
    return clients > 0 ? alpha * residualFactor(this.params.residuals, self.model, self.batch) : alpha;
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

/** Mean measured slowdown of some observations (what a flat margin assumes). */
export function meanSlowdown(obs: readonly Observation[]): number {
  return obs.reduce((s, o) => s + o.slowdown, 0) / obs.length;
}

/** "30/70": the split of an observation's pair, smaller part first. */
const splitOf = (o: Observation) => [o.part, o.otherPart].sort((a, b) => a - b).join("/");

/** Errors of one split transfer (% of the co-located latency): fitted on `split` or on every other split. */
export interface SplitTransfer {
  split: string;
  /** Observations predicted. */
  n: number;
  meanPct: number;
  /** Mean signed error: > 0 pessimistic. */
  biasPct: number;
  maxPct: number;
  /** The training mean slowdown (a flat margin) on the same observations. */
  flatMeanPct: number;
}

/**
 * For each split of the observations, when there is more than one: fit on every other split and predict it
 * (`heldOut`), or fit on it alone and predict every other (`alone`: what a device measured at one split gets).
 */
export function splitTransfers(
  latency: LatencyModel,
  obs: readonly Observation[],
  fitOn: "heldOut" | "alone",
): SplitTransfer[] {
  const splits = [...new Set(obs.map(splitOf))].sort();
  if (splits.length < 2) return [];
  return splits.map((split) => {
    const train = obs.filter((o) => (splitOf(o) === split) === (fitOn === "alone"));
    const test = obs.filter((o) => (splitOf(o) === split) !== (fitOn === "alone"));
    const model = InterferenceModel.fit(latency, train);
    const flat = meanSlowdown(train);
    const rel = test.map((o) =>
      (model.slowdown(o.model, o.part, o.other, o.otherPart, o.batch) - o.slowdown) / o.slowdown
    );
    const mean = (xs: number[]) => (100 * xs.reduce((a, b) => a + b, 0)) / xs.length;
    return {
      split,
      n: test.length,
      meanPct: mean(rel.map(Math.abs)),
      biasPct: mean(rel),
      maxPct: 100 * Math.max(...rel.map(Math.abs)),
      flatMeanPct: mean(test.map((o) => Math.abs(flat - o.slowdown) / o.slowdown)),
    };
  });
}
