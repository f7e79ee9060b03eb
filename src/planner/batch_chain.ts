/**
 * One function alone on a gpu-let with Poisson arrivals, solved as the queue it is (pure): the backlog left
 * at the end of each batch is a Markov chain, so the batch sizes the gpu-let really runs follow from its
 * rate instead of being bounded by full batches. At light load a batch of 16 mostly runs 2–4 rows, and the
 * full-batch bound overstates the wait behind it several times over (`tail.ts` uses this chain for such
 * gpu-lets and keeps its bound for time-shared ones and burstier arrivals).
 *
 * The gpu-let is work-conserving: after a batch it takes `min(n, B)` of the `n` waiting, or waits for the
 * next arrival and runs it alone. Arrivals during a batch of `b` rows are Poisson with mean `λ·f·S(b)`, the
 * batch's service factor `f` drawn afresh for every batch (as the request-level simulator draws it). The
 * stationary backlog comes from GTH state reduction (no pivoting, stable), which keeps to the chain's band:
 * a step lowers the backlog by at most `B` and raises it by at most what one batch's arrivals can be.
 *
 * A request then sees the gpu-let idle (it rides alone) or a batch of `b` at a uniform phase φ: it waits
 * out the batch, `⌊k/B⌋` full batches for the `k` ahead of it, and its own batch, which holds the ones
 * behind it that arrived meanwhile (up to `B`). The batch it lands in has its own factor (length-biased:
 * slow batches catch more arrivals); the batches after it draw theirs afresh, so their sum spreads less
 * than one batch does (Fenton–Wilkinson: one lognormal with the sum's mean and variance). Holding one
 * factor for the whole stay instead overstated the H200's p99 of batching gpu-lets by about 14 % beyond the
 * simulator's (`bench/results/gpu_replay.md`).
 */

/** One function's batching: its rate (requests/s), largest batch and batch latency (ms, by rows). */
export interface ChainClass {
  rate: number;
  batch: number;
  latencyMs: (k: number) => number;
}

/** A service factor (mean 1 over all of them) and its weight. */
export interface Factor {
  f: number;
  w: number;
}

/** 3-point Gauss–Hermite nodes and weights for a standard normal. */
const HERMITE = [[-Math.sqrt(3), 1 / 6], [0, 2 / 3], [Math.sqrt(3), 1 / 6]] as const;

/** The lognormal factor of mean 1 and CV `cv` at standard-normal node `z`. */
function lognormalAt(cv: number, z: number): number {
  const s2 = Math.log(1 + cv * cv);
  return Math.exp(Math.sqrt(s2) * z - s2 / 2);
}

/** Service-time factors (mean 1, CV `spread`) with their weights: a 3-point quadrature of the lognormal. */
export function serviceFactors(spread: number): Factor[] {
  if (spread <= 0) return [{ f: 1, w: 1 }];
  return HERMITE.map(([z, w]) => ({ f: lognormalAt(spread, z), w }));
}

/** The solved chain: how a request's latency is distributed follows from it for any threshold. */
export interface BatchChain {
  /** Share of requests that find the gpu-let idle. */
  idle: number;
  /** Per backlog n after a batch: the share of requests that arrive during the batch it starts. */
  during: Float64Array;
  /** Per backlog n: rows of the batch it starts. */
  rows: Int32Array;
  /** Batch latency by rows (index 1..B). */
  serviceMs: Float64Array;
  lambdaPerMs: number;
  batch: number;
  /** CV of each batch's service time around its profiled latency, and its quadrature. */
  spread: number;
  factors: readonly Factor[];
  /** Share of requests beyond the chain's last state: counted as misses. */
  beyond: number;
}

/**
 * Batch sizes the executor prepares for a planned batch (CUDA graphs, as `plan_exec.py` captures them):
 * powers of two below it, and the batch itself. A batch of n rows runs at the smallest one ≥ n.
 */
export function preparedSizes(batch: number): number[] {
  const sizes = new Set<number>([batch]);
  for (let s = 1; s < batch; s *= 2) sizes.add(s);
  return [...sizes].sort((a, b) => a - b);
}

/**
 * Most work (states × band × batch) one chain may take, about 0.2 ms: a large batch close to saturation
 * needs a long, wide chain (the work grows with the cube of the batch), and the planner asks about many of
 * them; those are left to the full-batch bound, which is close there. 4× this made the live autoscaler's
 * first re-plans seconds slower under load.
 */
const MAX_WORK = 1.5e5;

/** Phases of a batch a request may arrive at (midpoint rule). */
const PHASES = 12;

/** Poisson pmf 0..n−1 of mean `mu`, as a new array (the rest is 1 − its sum). */
function poissonPmf(mu: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let p = Math.exp(-mu);
  for (let k = 0; k < n; k++) {
    out[k] = p;
    p *= mu / (k + 1);
  }
  return out;
}

/**
 * Solves the chain for batches whose service times spread with CV `spread`, with `minStates` backlog states
 * at least (past them the backlog's tail must be negligible): backlogs from the last state on are lumped
 * into it, and its requests count as misses.
 * Undefined when the gpu-let cannot keep up even with full batches, or is so close to it that the chain
 * would be too long to solve here.
 */
export function solveBatchChain(c: ChainClass, spread: number, minStates: number): BatchChain | undefined {
  const factors = serviceFactors(spread);
  const B = c.batch, lambda = c.rate / 1000;
  const serviceMs = new Float64Array(B + 1);
  const sizes = preparedSizes(B);
  for (let k = 1; k <= B; k++) serviceMs[k] = c.latencyMs(sizes.find((s) => s >= k) ?? B);
  if (!(lambda > 0) || lambda * serviceMs[B] >= B) return undefined;
  // Enough states that what lies beyond is negligible (`minStates`, from the backlog's decay rate): the
  // last state keeps what would go beyond it, which would otherwise distort the states below.
  const N = Math.max(2 * B + 2, Math.ceil(minStates));
  // Arrivals during a batch of b rows: a mixture over the service factors, support cut where the tail is < 1e-14.
  const fMax = Math.max(...factors.map((x) => x.f));
  const muMax = lambda * fMax * serviceMs[B];
  const support = Math.min(N, Math.ceil(muMax + 8 * Math.sqrt(muMax) + 10));
  if (N * (support + B) * B > MAX_WORK) return undefined;
  const arrivals: Float64Array[] = [];
  for (let b = 1; b <= B; b++) {
    if (b > 1 && serviceMs[b] === serviceMs[b - 1]) { // the same prepared size: the same arrivals
      arrivals[b] = arrivals[b - 1];
      continue;
    }
    const mix = new Float64Array(support);
    for (const { f, w } of factors) {
      const pmf = poissonPmf(lambda * f * serviceMs[b], support);
      for (let k = 0; k < support; k++) mix[k] += w * pmf[k];
    }
    arrivals[b] = mix;
  }
  const rows = new Int32Array(N);
  for (let n = 0; n < N; n++) rows[n] = n === 0 ? 1 : Math.min(n, B);
  // Transition matrix in band storage: row i keeps columns i − B … i + support + B, where GTH's fill-in
  // stays. The last state takes what would go beyond it (rows too far below it send it nothing measurable).
  const W = support + 2 * B + 1;
  const P = new Float64Array(N * W);
  const row = (i: number) => i * (W - 1) + B; // row i's column j lives at row(i) + j
  for (let n = 0; n < N; n++) {
    const b = rows[n], base = n === 0 ? 0 : n - b, a = arrivals[b];
    let mass = 0;
    for (let k = 0; k < support && base + k < N - 1; k++) {
      P[row(n) + base + k] = a[k];
      mass += a[k];
    }
    if (N - 1 - n <= support + B) P[row(n) + N - 1] += Math.max(0, 1 - mass);
  }
  // GTH: eliminate states from the last down; S[k] is the rate out of k into states below it. Entries
  // below 1e-16 are arrivals' far tails and carry nothing.
  const S = new Float64Array(N);
  for (let k = N - 1; k >= 1; k--) {
    const lo = Math.max(0, k - B), rk = row(k);
    let s = 0;
    for (let j = lo; j < k; j++) s += P[rk + j];
    S[k] = s;
    if (s <= 0) continue;
    for (let i = Math.max(0, k - support - B); i < k; i++) {
      const ri = row(i), pik = P[ri + k];
      if (pik < 1e-16) continue;
      const scale = pik / s;
      for (let j = lo; j < k; j++) P[ri + j] += scale * P[rk + j];
    }
  }
  const pi = new Float64Array(N);
  pi[0] = 1;
  let total = 1;
  for (let k = 1; k < N; k++) {
    if (S[k] <= 0) continue;
    let v = 0;
    for (let i = Math.max(0, k - support - B); i < k; i++) v += pi[i] * P[row(i) + k];
    pi[k] = v / S[k];
    total += pi[k];
  }
  // From backlogs after batches to what an arrival sees: time idle (mean 1/λ) or in a batch (mean S(b)).
  let time = pi[0] / total / lambda;
  for (let n = 0; n < N; n++) time += (pi[n] / total) * serviceMs[rows[n]];
  const during = new Float64Array(N);
  for (let n = 0; n < N; n++) during[n] = (pi[n] / total) * serviceMs[rows[n]] / time;
  const beyond = during[N - 1];
  during[N - 1] = 0;
  return {
    idle: pi[0] / total / lambda / time,
    during,
    rows,
    serviceMs,
    lambdaPerMs: lambda,
    batch: B,
    spread,
    factors,
    beyond,
  };
}

/** P(a request's latency > `thresholdMs`), given P(one alone exceeds it) as `aloneExceeds`. */
export function chainExceeds(chain: BatchChain, thresholdMs: number, aloneExceeds: number): number {
  const { during, rows, serviceMs, lambdaPerMs: lambda, batch: B } = chain;
  const N = during.length;
  let miss = chain.idle * aloneExceeds + chain.beyond;
  let fTotal = 0;
  for (const { f, w } of chain.factors) fTotal += w * f;
  // The batches after the one it lands in: their sum's factor at each quadrature node, by how many batches
  // (q full ones and its own: CV spread/√(q+1)).
  const later = (chain.spread > 0 ? HERMITE : [[0, 1] as const]).map(([z, w]) => {
    const byQ: number[] = []; // remembered: firstMiss asks for the same few q again and again
    return { w, at: (q: number) => byQ[q] ??= lognormalAt(chain.spread / Math.sqrt(q + 1), z) };
  });
  for (const { f, w } of chain.factors) {
    // Length bias: a request lands in a slow batch more often, by its factor.
    const weight = (w * f) / fTotal;
    for (const g of later) {
      let sumPhases = 0;
      for (let j = 0; j < PHASES; j++) {
        const phi = (j + 0.5) / PHASES;
        // k ahead = what the batch left waiting + arrivals earlier in it (Poisson of mean λ·φ·f·S(b)).
        let sum = 0;
        for (let n = 0; n < Math.min(B, N - 1); n++) {
          const b = rows[n]; // nothing left waiting: n < B all ride in the batch
          const kMiss = firstMiss(serviceMs, B, f * (1 - phi) * serviceMs[b], thresholdMs, lambda, g.at);
          sum += during[n] * poissonAtLeast(lambda * phi * f * serviceMs[b], kMiss);
        }
        // The batches n ≥ B all run B rows and leave n − B waiting: one smallest k that misses, one tail.
        const kFull = firstMiss(serviceMs, B, f * (1 - phi) * serviceMs[B], thresholdMs, lambda, g.at);
        const mu = lambda * phi * f * serviceMs[B];
        const cut = Math.min(kFull, Math.ceil(mu + 8 * Math.sqrt(mu) + 12)); // P(arrivals ≥ cut) < 1e-14
        const upper = poissonUpper(mu, cut);
        for (let n = Math.max(B, B + kFull - cut); n < N - 1; n++) {
          const need = kFull - (n - B);
          sum += during[n] * (need <= 0 ? 1 : upper[need]);
        }
        sumPhases += sum;
      }
      miss += (weight * g.w * sumPhases) / PHASES;
    }
  }
  return Math.min(1, miss);
}

/**
 * The smallest count k ahead of a request whose latency exceeds `x`: `rest + g·(⌊k/B⌋·S(B) + S(own))`, with
 * `rest` what is left of the batch it lands in, `g` the factor of the q = ⌊k/B⌋ full batches and its own
 * (`factorAt(q)`), own = its share of the batch it rides in, joined by those arriving behind it meanwhile
 * (`λ` per ms, rounded up).
 */
function firstMiss(
  serviceMs: Float64Array,
  B: number,
  rest: number,
  x: number,
  lambda: number,
  factorAt: (q: number) => number,
): number {
  const full = serviceMs[B];
  // Counts below m full batches all fit (g ≤ max(g(0), 1): the factor tends to 1 as batches add up); within
  // a block of B counts the wait is the same and the own batch grows with the count, so the first miss of a
  // block is found by bisection.
  const gMax = Math.max(1, factorAt(0));
  for (let q = Math.max(0, Math.floor((x - rest - gMax * full) / (gMax * full)));; q++) {
    const g = factorAt(q);
    const wait = rest + g * q * full, room = (x - wait) / g;
    if (full <= room) continue; // even a full own batch fits: the whole block does
    const behind = Math.ceil(lambda * wait);
    let lo = 0, hi = B - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (serviceMs[Math.min(B, mid + 1 + behind)] > room) hi = mid;
      else lo = mid + 1;
    }
    return q * B + lo;
  }
}

/** P(Poisson(mu) ≥ m) for m = 0 … cut. */
function poissonUpper(mu: number, cut: number): Float64Array {
  const upper = new Float64Array(cut + 1);
  let p = Math.exp(-mu), below = 0;
  for (let m = 0; m <= cut; m++) {
    upper[m] = Math.max(0, 1 - below);
    below += p;
    p *= mu / (m + 1);
  }
  return upper;
}

/** P(Poisson(mu) ≥ k). */
function poissonAtLeast(mu: number, k: number): number {
  if (k <= 0) return 1;
  if (mu <= 0) return 0;
  let p = Math.exp(-mu), below = 0;
  for (let i = 0; i < k; i++) {
    below += p;
    p *= mu / (i + 1);
    if (p < 1e-16 && i > mu) break;
  }
  return Math.max(0, 1 - below);
}
