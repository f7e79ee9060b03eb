/**
 * The tail model: how likely a request of a gpu-let misses its SLO under random arrivals, in closed form
 * (pure). The planner sizes every gpu-let with it, so a plan promises a percentile (p99 by default) of
 * request latency, not only an average.
 *
 * The gpu-let is work-conserving: idle, it starts a batch as soon as a request arrives; busy, it runs one
 * batch after another, each function taking up to its batch `B_i` in turn (one function: a turn is a batch).
 * A request either finds it idle (it rides alone: latency `S(1)`) or busy. Busy, the model bounds the
 * gpu-let by one that always runs full turns: a cycle of `C = Σ S_i(B_i)` in which function i serves up to
 * `B_i`. A request arriving at phase φ of a cycle waits out the cycle, then `1 + ⌊X/B_i⌋` more, where X is
 * the backlog ahead of it: what earlier cycles left over (a Lindley walk with increments `A − B_i`, A the
 * arrivals of one cycle; its tail is bounded by Kingman's `P(Q ≥ x) ≤ e^{−θx}`, `E e^{θ(A−B)} = 1`) plus
 * what arrived earlier in this cycle. With no backlog this is the duty-cycle rule `d + ΣL ≤ SLO` with
 * `d = ΣL`; what it adds is the queueing the rule ignores.
 *
 * - Arrivals: Poisson, or Gamma renewals with CV `cv` (counts over a cycle by the renewal process's
 *   large-deviation rate, `λt·k(e^{θ/k} − 1)` with `k = 1/cv²`; counts within a cycle negative binomial).
 *   Bursty arrivals find the gpu-let busy more often than its busy share: × (1 + cv²)/2 (Kingman's factor),
 *   and at least as often as a gap is shorter than a batch (at light load, requests come in clumps, and the
 *   one behind finds a batch just begun).
 * - Service times vary around the profile (neighbours' bursts, clocks): a lognormal factor of CV `spread`,
 *   held for a request's whole stay in the bound (3-point Gauss–Hermite; the chain draws one per batch), and
 *   mixed into the cycle's arrivals.
 * - Busy share: each function at its own mean batch `b = min(B, max(1, λ·S(b)))` (no help from waiting
 *   for other functions' turns, so it does not understate it), `u = Σ λ_i·S_i(b_i)/b_i`.
 *
 * It is an upper bound for most of the range (full turns, Kingman's constant 1): at light load it overstates
 * a time-shared gpu-let's cycle, near saturation it is close. One function alone with Poisson arrivals is
 * also solved as the queue it is (`batch_chain.ts`: the batch sizes it really runs), and the lower of the two
 * answers is the model's. `bench/tail.ts` sets it beside the request-level simulator.
 */

import { type BatchChain, chainExceeds, serviceFactors, solveBatchChain } from "./batch_chain.ts";

/** What a plan promises about latency, and what it assumes of arrivals and service times. */
export interface TailTarget {
  /** Share of requests within the SLO, e.g. 0.99 (p99). */
  percentile: number;
  /** CV of inter-arrival gaps: 1 Poisson, > 1 burstier (Gamma). */
  cv: number;
  /** CV of a batch's service time around its profiled latency. */
  spread: number;
}

/**
 * Spread of service times the planner assumes: resnet50-tight on the H200 (`../shared/data/h200/`) has p99
 * latency 4–5.5 ms at 21–36 % busy with a 1.5 ms batch. Wider than the request-level simulator's
 * (`DEFAULT_SPREAD`, fitted to the H200's p99s): the model holds each gpu-let's interference at its mean,
 * where the simulator varies it with what the neighbours run at each moment.
 */
export const SERVICE_SPREAD = 0.2;

/** p99 for Poisson arrivals. */
export const DEFAULT_TAIL: TailTarget = { percentile: 0.99, cv: 1, spread: SERVICE_SPREAD };

/** One function of a gpu-let, as the tail model sees it. */
export interface QueueClass {
  /** Requests per second. */
  rate: number;
  /** Largest batch (the plan's batch). */
  batch: number;
  /** Latency of a batch of k rows here, interference included (ms); non-decreasing in k. */
  latencyMs: (k: number) => number;
  sloMs: number;
  /** CV of its arrivals, where it differs from the target's (an app stage's grouped calls). */
  cv?: number;
}

/** Phases of the cycle a request may arrive at (midpoint rule). */
const PHASES = 12;
/** What a function's batching depends on: its rate, largest batch and latencies (not its SLO). */
type Batching = Pick<QueueClass, "rate" | "batch" | "latencyMs">;

/** S(b) for a fractional batch b ∈ [1, B]: linear between the integer batches around it. */
function latencyAt(c: Batching, b: number): number {
  const lo = Math.floor(b), hi = Math.min(c.batch, lo + 1);
  return c.latencyMs(lo) + (c.latencyMs(hi) - c.latencyMs(lo)) * (b - lo);
}

/** A function's mean batch when alone and busy: the fixed point of b = λ·S(b), within [1, B]. */
function meanBatch(c: Batching): number {
  const lambda = c.rate / 1000;
  let b = 1;
  for (let i = 0; i < 40; i++) {
    const next = Math.min(c.batch, Math.max(1, lambda * latencyAt(c, b)));
    if (Math.abs(next - b) < 1e-6) return next;
    b = next;
  }
  return b;
}

/** Share of time one function keeps its gpu-let busy (may exceed 1 when overloaded), by its mean batch. */
export function functionBusy(c: Batching): number {
  if (c.rate <= 0) return 0;
  const b = meanBatch(c);
  return (c.rate / 1000) * latencyAt(c, b) / b;
}

/** Share of time the gpu-let is busy (≤ 1), by each function's own mean batch. */
function busyShare(classes: readonly QueueClass[]): number {
  let u = 0;
  for (const c of classes) u += functionBusy(c);
  return Math.min(1, u);
}

/**
 * Kingman's decay rate θ of the backlog: the positive root of `log E e^{θA} = θB` for the arrivals A of one
 * cycle (mean `λ·C`, mixed over the service factors); 0 when the cycle cannot keep up.
 */
function decayRate(
  lambdaPerMs: number,
  cycleMs: number,
  batch: number,
  fs: readonly { f: number; w: number }[],
  cv: number,
): number {
  if (lambdaPerMs * cycleMs >= batch) return 0;
  const k = cv > 0 ? 1 / (cv * cv) : 1;
  const g = (t: number) => k * Math.expm1(t / k);
  const h = (t: number) => {
    let m = 0;
    for (const { f, w } of fs) m += w * Math.exp(lambdaPerMs * f * cycleMs * g(t));
    return Math.log(m) - t * batch;
  };
  let hi = 1;
  while (h(hi) < 0 && hi < 64) hi *= 2;
  if (h(hi) < 0) return hi;
  // At light load the arrivals' transform overflows long before h turns positive: step back inside the
  // bracket [hi/2, hi] until h is finite (Newton from an infinite value would give NaN).
  for (let lo = hi / 2; !Number.isFinite(h(hi)) && hi - lo > 1e-9 * hi;) {
    const mid = (lo + hi) / 2;
    if (h(mid) < 0) lo = mid;
    else hi = mid;
  }
  // h is convex with h(0) = 0 and h'(0) < 0: Newton from the right converges to the root from above.
  let t = hi;
  for (let i = 0; i < 50; i++) {
    let m = 0, dm = 0;
    for (const { f, w } of fs) {
      const a = lambdaPerMs * f * cycleMs;
      const e = w * Math.exp(a * g(t));
      m += e;
      dm += e * a * Math.exp(t / k);
    }
    const value = Math.log(m) - t * batch, slope = dm / m - batch;
    if (slope <= 0) break;
    const next = t - value / slope;
    if (t - next < 1e-9 * t) break;
    t = next;
  }
  return t * (1 - 1e-6); // just below the root: a heavier tail
}

/**
 * `P(Q + U ≥ n)`: Q the backlog (`P(Q ≥ x) ≤ e^{−θx}`), U the arrivals earlier in the cycle (mean `m`;
 * Poisson, or negative binomial with variance `m·cv²` when cv > 1).
 */
function overflow(n: number, m: number, theta: number, cv: number): number {
  if (cv <= 1) {
    // Poisson: when the tilted count (mean m·e^θ) stays well below n, the sum is the whole generating
    // function, e^{−θn}·E e^{θU}, and U ≥ n is negligible.
    const tilted = m * Math.exp(theta);
    if (tilted + 7 * Math.sqrt(tilted) + 8 < n && m + 7 * Math.sqrt(m) + 8 < n) {
      return Math.min(1, Math.exp(m * Math.expm1(theta) - theta * n));
    }
  }
  let p: number, step: (u: number) => number;
  if (cv > 1 && m > 0) {
    const q = 1 / (cv * cv), r = m * q / (1 - q);
    p = Math.pow(q, r);
    step = (u) => ((u + r) / (u + 1)) * (1 - q);
  } else {
    p = Math.exp(-m);
    step = (u) => m / (u + 1);
  }
  // Terms with θ(n − u) > 40 add less than e^-40 each: the sum starts where they stop.
  const first = Math.max(0, n - Math.ceil(40 / theta));
  const ratio = Math.exp(theta);
  let below = 0, sum = 0, e = 0;
  for (let u = 0; u < n; u++) {
    if (u === first) e = Math.exp(-theta * (n - u));
    if (u >= first) {
      sum += p * e;
      e *= ratio;
    }
    below += p;
    if (u > m && p < 1e-13) break; // the rest counts as overflow (1 − below)
    p *= step(u);
  }
  return Math.min(1, sum + Math.max(0, 1 - below));
}

/** P(S > x) for S = base × a lognormal factor of mean 1 and CV `spread`. */
function lognormalExceeds(base: number, x: number, spread: number): number {
  if (spread <= 0) return base > x ? 1 : 0;
  const s2 = Math.log(1 + spread * spread);
  return 0.5 * erfc((Math.log(x / base) + s2 / 2) / Math.sqrt(2 * s2));
}

/** erfc by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7). */
function erfc(x: number): number {
  const z = Math.abs(x), t = 1 / (1 + 0.3275911 * z);
  const y = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
    Math.exp(-z * z);
  return x >= 0 ? y : 2 - y;
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** P(gap < x) for Gamma gaps of mean 1/λ and CV `cv` (the regularized lower incomplete gamma, by series). */
function gapBelow(lambdaPerMs: number, cv: number, x: number): number {
  const k = 1 / (cv * cv), z = k * lambdaPerMs * x;
  if (z <= 0) return 0;
  if (z > k + 40 + 10 * Math.sqrt(k)) return 1;
  let term = 1 / k, sum = term;
  for (let n = 1; n < 1000 && term > 1e-12 * sum; n++) sum += term *= z / (k + n);
  return Math.min(1, Math.exp(k * Math.log(z) - z - logGamma(k)) * sum);
}

/** A gpu-let's state as the model needs it, computed once for every function's check. */
interface Prepared {
  cycleMs: number;
  /** Share of all requests that find the gpu-let busy at a uniform point of its cycle. */
  busy: number;
  /** Per function: the share that, on top, come right behind a request of their own (a batch just begun). */
  clumped: number[];
  fs: { f: number; w: number }[];
  thetas: number[];
  /**
   * One function alone with Poisson arrivals: its queue solved exactly (`batch_chain.ts`), by index; solved
   * on first use, since the bound alone often answers.
   */
  chain: () => { index: number; solved: BatchChain } | undefined;
}

/** The CV of class `c`'s arrivals: its own, else the target's. */
const cvOf = (c: QueueClass, tail: TailTarget) => c.cv ?? tail.cv;

function prepare(classes: readonly QueueClass[], tail: TailTarget): Prepared {
  const fs = serviceFactors(tail.spread);
  const cycleMs = classes.reduce((s, c) => s + (c.rate > 0 ? c.latencyMs(c.batch) : 0), 0);
  // Kingman's factor for the gpu-let's merged arrivals: their squared CV, rate-weighted over its functions.
  const rates = classes.reduce((s, c) => s + c.rate, 0);
  const cv2 = rates > 0 ? classes.reduce((s, c) => s + c.rate * cvOf(c, tail) ** 2, 0) / rates : tail.cv ** 2;
  const busy = Math.min(1, busyShare(classes) * Math.max(1, (1 + cv2) / 2));
  // Bursty arrivals come right behind one another even when the gpu-let is mostly idle: a request finds it
  // busy at least when its gap to the previous one is shorter than that one's batch, and then the batch has
  // only just begun (for Poisson arrivals this never exceeds the busy share).
  const clumped = classes.map((c) =>
    Math.max(0, Math.min(1, gapBelow(c.rate / 1000, cvOf(c, tail), c.latencyMs(1))) - busy)
  );
  const thetas = classes.map((c) => decayRate(c.rate / 1000, cycleMs, c.batch, fs, cvOf(c, tail)));
  const active = classes.flatMap((c, i) => (c.rate > 0 ? [i] : []));
  let chain: ReturnType<Prepared["chain"]> | null = null;
  const solve = () => {
    if (chain !== null) return chain;
    chain = undefined;
    const index = active[0];
    if (active.length === 1 && cvOf(classes[index], tail) <= 1 && thetas[index] > 0) {
      const c = classes[index];
      // Enough backlog states that the chain's last one holds less than e^-16 of it (Kingman's bound).
      const solved = solveBatchChain(c, tail.spread, 2 * c.batch + 16 / thetas[index]);
      if (solved) chain = { index, solved };
    }
    return chain;
  };
  return { cycleMs, busy, clumped, fs, thetas, chain: solve };
}

/**
 * P(a request of class i takes longer than `thresholdMs`): the lower of the full-batch bound and the chain.
 * Where the bound is at most `boundSuffices` (a caller that only compares with that share), the chain is not
 * consulted: it could only be lower.
 */
function exceeds(
  classes: readonly QueueClass[],
  i: number,
  pre: Prepared,
  tail: TailTarget,
  thresholdMs: number,
  boundSuffices = -Infinity,
): number {
  const c = classes[i];
  const theta = pre.thetas[i];
  if (theta <= 0) return 1;
  const idle = lognormalExceeds(c.latencyMs(1), thresholdMs, tail.spread);
  // Arriving at phase φ of a busy cycle, it waits out the rest of it, then 1 + ⌊X/B⌋ more.
  const late = (phase: number, cycle: number, slack: number) => {
    const x = slack + phase;
    return x < 0 ? 1 : overflow((Math.floor(x) + 1) * c.batch, (c.rate / 1000) * phase * cycle, theta, cvOf(c, tail));
  };
  let uniform = 0, begun = 0;
  for (const { f, w } of pre.fs) {
    const cycle = f * pre.cycleMs;
    const slack = thresholdMs / cycle - 2; // cycles of queueing the request can afford, at phase 0
    let v = 0;
    for (let j = 0; j < PHASES; j++) v += late((j + 0.5) / PHASES, cycle, slack);
    uniform += w * v / PHASES;
    begun += w * late(0, cycle, slack);
  }
  const clumped = pre.clumped[i];
  const bound = (1 - pre.busy - clumped) * idle + pre.busy * uniform + clumped * begun;
  if (bound <= boundSuffices) return bound;
  const chain = pre.chain();
  return chain?.index === i ? Math.min(bound, chainExceeds(chain.solved, thresholdMs, idle)) : bound;
}

/** Per function, the modelled share of requests that miss its SLO. */
export function missShares(classes: readonly QueueClass[], tail: TailTarget): number[] {
  const pre = prepare(classes, tail);
  return classes.map((c, i) => (c.rate > 0 ? exceeds(classes, i, pre, tail, c.sloMs) : 0));
}

/**
 * True when every function's modelled miss share is within the target's (1 − percentile). The model is the
 * lower of the full-batch bound and the chain, so the cheap bound is tried first: when it holds, so does the
 * model.
 */
export function meetsTail(classes: readonly QueueClass[], tail: TailTarget): boolean {
  const allowed = 1 - tail.percentile + 1e-12;
  const pre = prepare(classes, tail);
  return classes.every((c, i) => c.rate <= 0 || exceeds(classes, i, pre, tail, c.sloMs, allowed) <= allowed);
}

/**
 * The largest rate in [lo, hi] at which one function alone keeps the target, within `relTol` of it;
 * undefined when even `lo` misses it, `hi` when that keeps it too. The miss share rises steeply and smoothly
 * with the rate, so its logarithm is solved for by regula falsi (Illinois): a few models instead of a
 * bisection's dozen.
 */
export function largestRateWithin(
  classAt: (rate: number) => QueueClass,
  lo: number,
  hi: number,
  tail: TailTarget,
  relTol = 2e-3,
): number | undefined {
  const allowed = 1 - tail.percentile;
  // log(miss / allowed), from the cheap bound where that already keeps the target (the exact one is lower).
  const gap = (rate: number) => {
    const c = [classAt(rate)];
    const miss = exceeds(c, 0, prepare(c, tail), tail, c[0].sloMs, allowed + 1e-12);
    return Math.log(Math.max(miss, 1e-15) / (allowed + 1e-12));
  };
  const atLo = gap(lo);
  if (atLo > 0) return undefined;
  let fb = gap(hi);
  if (fb <= 0) return hi;
  let a = lo, b = hi, fa = Math.min(-1e-9, atLo), side = 0;
  for (let i = 0; i < 30 && b - a > relTol * b; i++) {
    // The secant's root, kept off the ends so that each step shrinks the bracket.
    const c = Math.min(b - 0.02 * (b - a), Math.max(a + 0.02 * (b - a), (a * fb - b * fa) / (fb - fa)));
    const fc = gap(c);
    if (fc <= 0) {
      a = c, fa = fc;
      if (side === -1) fb /= 2;
      side = -1;
    } else {
      b = c, fb = fc;
      if (side === 1) fa /= 2;
      side = 1;
    }
  }
  return a;
}

/** Per function, the modelled latency at the target's percentile (ms; Infinity when a queue cannot keep up). */
export function percentileLatencies(classes: readonly QueueClass[], tail: TailTarget): number[] {
  const pre = prepare(classes, tail);
  const allowed = 1 - tail.percentile;
  return classes.map((c, i) => {
    if (c.rate <= 0) return 0;
    if (pre.thetas[i] <= 0) return Infinity;
    let lo = 0, hi = Math.max(c.sloMs, 2 * pre.cycleMs);
    for (let k = 0; k < 60 && exceeds(classes, i, pre, tail, hi) > allowed; k++) hi *= 2;
    for (let k = 0; k < 40; k++) {
      const mid = (lo + hi) / 2;
      if (exceeds(classes, i, pre, tail, mid) > allowed) lo = mid;
      else hi = mid;
    }
    return hi;
  });
}
