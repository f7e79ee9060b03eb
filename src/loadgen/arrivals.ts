/**
 * Arrival processes for the load generator and the simulator (pure, seeded): Poisson, and Gamma renewal
 * arrivals with a chosen coefficient of variation (CV > 1 gives bursts, CV = 1 is Poisson). Each takes its random
 * source, the project's one seeded generator (`planner/random.ts`).
 */

/** A standard normal sample (Box-Muller). */
export function normal(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A Gamma(shape, 1) sample (Marsaglia-Tsang; shape < 1 by boosting). */
export function gammaSample(shape: number, random: () => number): number {
  if (shape < 1) return gammaSample(shape + 1, random) * Math.pow(1 - random(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/**
 * The gap (ms) to the next arrival of a renewal process with `rate` arrivals per second and coefficient of
 * variation `cv` of the gaps (1: Poisson, exponential gaps).
 */
export function nextGapMs(rate: number, cv: number, random: () => number): number {
  if (!(rate > 0)) return Infinity;
  const mean = 1000 / rate;
  if (Math.abs(cv - 1) < 1e-9) return -Math.log(1 - random()) * mean;
  const shape = 1 / (cv * cv);
  return gammaSample(shape, random) * (mean / shape);
}

/** A lognormal factor with mean 1 and the given CV (1 when cv ≤ 0): how service times spread. */
export function meanOneLognormal(cv: number, random: () => number): number {
  if (cv <= 0) return 1;
  const sigma2 = Math.log(1 + cv * cv);
  return Math.exp(Math.sqrt(sigma2) * normal(random) - sigma2 / 2);
}
