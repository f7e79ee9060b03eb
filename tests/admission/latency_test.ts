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
  // A new point starts from its neighbours' interpolation (2 + (6 − 2) / 3), then moves toward the sample.
  assert.ok(Math.abs(est.estimate(2) - (10 / 3 + 0.2 * (4 - 10 / 3))) < 1e-9, String(est.estimate(2)));
  assert.deepEqual(Object.keys(est.toJSON()), ["1", "2", "4", "8"]);
});

Deno.test("latency estimate: one outlier at a batch size never seen does not become its estimate", () => {
  const est = new LatencyEstimate({ 1: 0.3, 32: 2 });
  est.observe(16, 25); // the core was taken away during this one batch
  assert.ok(est.estimate(16) < 7, `estimate ${est.estimate(16)} ms after one 25 ms outlier`);
  for (let i = 0; i < 30; i++) est.observe(16, 1.2);
  assert.ok(Math.abs(est.estimate(16) - 1.2) < 0.05, "repeated measurements still win");
});

Deno.test("latency estimate: with no data it says 0, below the smallest point it uses that point", () => {
  assert.equal(new LatencyEstimate().estimate(8), 0);
  assert.equal(new LatencyEstimate({ 4: 12 }).estimate(1), 12);
});
