/**
 * Peak search (Gpu-let §4.3): the largest common multiplier of every function's rate that a policy still
 * serves in full on a given number of GPUs. Feasibility of a heuristic is not strictly monotone in the rate;
 * the search brackets the first failure by doubling, then bisects, and reports the largest scale it saw
 * succeed.
 */

/** Bisection stops when the bracket is this narrow, relative to the scale. */
const PRECISION = 0.002;

/** The largest scale for which `feasible(scale)` holds (0 if none from `start` down). */
export function peakScale(feasible: (scale: number) => boolean, start = 1, upper = Infinity): number {
  let lo = 0;
  let hi = Math.min(start, upper);
  // Find a failing scale above the last success.
  while (feasible(hi)) {
    lo = hi;
    if (hi >= upper) return hi;
    hi = Math.min(hi * 2, upper);
  }
  if (lo === 0) {
    // Shrink until something works (or give up at a millionth of the start).
    while (hi > start * 1e-6) {
      hi /= 2;
      if (feasible(hi)) {
        lo = hi;
        hi *= 2;
        break;
      }
    }
    if (lo === 0) return 0;
  }
  while ((hi - lo) / lo > PRECISION) {
    const mid = (lo + hi) / 2;
    if (feasible(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Fractions of a claimed peak that must plan too. */
const PEAK_FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/**
 * The largest scale ≤ `scale` whose every fraction in {@link PEAK_FRACTIONS} is feasible too: a claimed peak
 * promises that any lower demand plans as well. Packing is not monotone in the demand, so a heuristic's
 * first failure below its peak lowers the claim to just under it (then its fractions are checked again);
 * 0 when no claim is found whose fractions all plan.
 */
export function monotonePeak(feasible: (scale: number) => boolean, scale: number): number {
  let claim = scale;
  for (let checked = 0; checked < 20; checked++) {
    const failing = PEAK_FRACTIONS.find((f) => !feasible(claim * f));
    if (failing === undefined) return claim;
    claim *= failing * (1 - 1e-3);
    while (!feasible(claim)) {
      claim *= 0.95;
      // A layout that plans at some load but not at a small share of it: no claim holds for all below.
      if (claim <= scale * 1e-6) return 0;
    }
  }
  return 0; // no claim whose fractions all plan was found
}
