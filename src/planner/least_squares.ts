/**
 * Small nonlinear least squares: Levenberg–Marquardt with a forward-difference Jacobian, for fitting a
 * handful of parameters to a few hundred residuals (the interference model). Pure and deterministic.
 */
import { seededRandom } from "./random.ts";

/** Solves A·x = b (A square, copied) by Gaussian elimination with partial pivoting; null if singular. */
export function solveLinear(a: number[][], b: number[]): number[] | null {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[pivot][c])) pivot = r;
    if (Math.abs(m[pivot][c]) < 1e-300) return null;
    [m[c], m[pivot]] = [m[pivot], m[c]];
    for (let r = c + 1; r < n; r++) {
      const f = m[r][c] / m[c][c];
      for (let k = c; k <= n; k++) m[r][k] -= f * m[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r][n];
    for (let k = r + 1; k < n; k++) s -= m[r][k] * x[k];
    x[r] = s / m[r][r];
  }
  return x;
}

const sumSq = (r: number[]) => r.reduce((s, v) => s + v * v, 0);

/** Result of a fit: parameters and the sum of squared residuals there. */
export interface FitResult {
  params: number[];
  cost: number;
  iterations: number;
}

/**
 * Minimises Σ residuals(p)² from `start`. `residuals` must return finite numbers for the parameters it is
 * given (return large values to steer away from bad regions).
 */
export function levenbergMarquardt(
  residuals: (p: number[]) => number[],
  start: number[],
  opts: { maxIterations?: number; tolerance?: number } = {},
): FitResult {
  const maxIt = opts.maxIterations ?? 200;
  const tol = opts.tolerance ?? 1e-12;
  let p = [...start];
  let r = residuals(p);
  let cost = sumSq(r);
  let lambda = 1e-3;
  let it = 0;
  for (; it < maxIt; it++) {
    // Jacobian by forward differences.
    const jac: number[][] = r.map(() => new Array<number>(p.length).fill(0));
    for (let j = 0; j < p.length; j++) {
      const h = 1e-6 * Math.max(1, Math.abs(p[j]));
      const q = [...p];
      q[j] += h;
      const rq = residuals(q);
      for (let i = 0; i < r.length; i++) jac[i][j] = (rq[i] - r[i]) / h;
    }
    const jtj = p.map((_, a) => p.map((_, b) => jac.reduce((s, row) => s + row[a] * row[b], 0)));
    const jtr = p.map((_, a) => jac.reduce((s, row, i) => s + row[a] * r[i], 0));
    let improved = false;
    while (lambda < 1e12) {
      const damped = jtj.map((row, a) => row.map((v, b) => (a === b ? v + lambda * (v || 1e-12) : v)));
      const step = solveLinear(damped, jtr.map((v) => -v));
      if (step) {
        const q = p.map((v, j) => v + step[j]);
        const rq = residuals(q);
        const c = sumSq(rq);
        if (Number.isFinite(c) && c < cost) {
          const gain = cost - c;
          p = q;
          r = rq;
          cost = c;
          lambda = Math.max(lambda / 3, 1e-12);
          improved = true;
          if (gain < tol * (1 + cost)) return { params: p, cost, iterations: it + 1 };
          break;
        }
      }
      lambda *= 4;
    }
    if (!improved) break;
  }
  return { params: p, cost, iterations: it };
}

/** Best of several LM runs from seeded random starts around `center` (± `spread`). */
export function fitWithRestarts(
  residuals: (p: number[]) => number[],
  center: number[],
  opts: { restarts?: number; spread?: number; seed?: number } = {},
): FitResult {
  const rand = seededRandom(opts.seed ?? 1);
  let best: FitResult | undefined;
  for (let k = 0; k < (opts.restarts ?? 8); k++) {
    const start = k === 0 ? center : center.map((c) => c + (rand() * 2 - 1) * (opts.spread ?? 1));
    const fit = levenbergMarquardt(residuals, start);
    if (!best || fit.cost < best.cost) best = fit;
  }
  return best!;
}
