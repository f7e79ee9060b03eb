import assert from "node:assert/strict";
import { fitWithRestarts, levenbergMarquardt, solveLinear } from "../../src/planner/least_squares.ts";

Deno.test("solveLinear solves with pivoting and reports singular systems", () => {
  assert.deepEqual(solveLinear([[0, 2], [3, 1]], [4, 5]), [1, 2]);
  assert.equal(solveLinear([[1, 2], [2, 4]], [1, 2]), null);
});

Deno.test("Levenberg–Marquardt recovers the parameters of an exponential from exact data", () => {
  const xs = Array.from({ length: 20 }, (_, i) => i / 4);
  const ys = xs.map((x) => 2.5 * Math.exp(-0.7 * x) + 0.3);
  const res = (p: number[]) => xs.map((x, i) => p[0] * Math.exp(p[1] * x) + p[2] - ys[i]);
  const fit = levenbergMarquardt(res, [1, -0.1, 0]);
  assert.ok(Math.abs(fit.params[0] - 2.5) < 1e-4 && Math.abs(fit.params[1] + 0.7) < 1e-4, String(fit.params));
  assert.ok(fit.cost < 1e-10);
});

Deno.test("restarts escape a bad start and are reproducible", () => {
  // cos has many local minima; the global one of (cos(p) − 1)² + (p − 6)²/100 is near p = 2π.
  const res = (p: number[]) => [Math.cos(p[0]) - 1, (p[0] - 6) / 10];
  const a = fitWithRestarts(res, [3.3], { restarts: 10, spread: 4, seed: 3 });
  const b = fitWithRestarts(res, [3.3], { restarts: 10, spread: 4, seed: 3 });
  assert.deepEqual(a, b);
  assert.ok(Math.abs(a.params[0] - 2 * Math.PI) < 0.2, String(a.params));
});
