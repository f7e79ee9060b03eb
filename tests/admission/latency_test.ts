import assert from "node:assert/strict";
import { LatencyEstimate } from "../../src/admission/latency.ts";

Deno.test("latency estimate: measured points, interpolation between them, linear beyond, EWMA updates", () => {
  const est = new LatencyEstimate({ 1: 2, 4: 5, 8: 9 });
  assert.equal(est.estimate(4), 5);
  assert.equal(est.estimate(2), 3); // between 1 → 2 ms and 4 → 5 ms
  assert.equal(est.estimate(6), 7);
  assert.equal(est.estimate(16), 18); // beyond the largest point: per-row cost of batch 8
  est.observe(4, 10);
  assert.equal(est.estimate(4), 6); // 5 + 0.2 · (10 − 5)
  est.observe(2, 4);
  assert.equal(est.estimate(2), 4, "a new point is taken as measured");
  assert.deepEqual(Object.keys(est.toJSON()), ["1", "2", "4", "8"]);
});

Deno.test("latency estimate: with no data it says 0, below the smallest point it uses that point", () => {
  assert.equal(new LatencyEstimate().estimate(8), 0);
  assert.equal(new LatencyEstimate({ 4: 12 }).estimate(1), 12);
});
