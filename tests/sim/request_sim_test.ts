/**
 * The request-level simulator against queueing theory and against the executor's rules: an M/D/1 queue's
 * mean wait, burstier arrivals giving longer tails, turns between the functions of a time-shared gpu-let,
 * batches that grow with load up to the planned batch.
 */
import assert from "node:assert/strict";
import { LatencyModel } from "../../src/planner/latency_model.ts";
import { preparedSizes } from "../../src/planner/batch_chain.ts";
import { replayGpu } from "../../src/sim/request_sim.ts";

/** A profile where model `m` takes 1 ms per batch at any size (deterministic service) and `n` 2 ms + 1 ms/row. */
const profile = LatencyModel.parse(
  "model,part,batch,latency_ms\n" +
    [1, 2, 4, 8].flatMap((b) => [50, 100].map((p) => `m,${p},${b},1\nn,${p},${b},${2 + b}`)).join("\n"),
);

Deno.test("request sim: one batch-1 gpu-let with fixed service is an M/D/1 queue (mean wait ρs/2(1−ρ))", () => {
  for (const rho of [0.3, 0.6, 0.8]) {
    const [f] = replayGpu(
      [{ part: 100, functions: [{ name: "f", model: "m", batch: 1, rate: rho * 1000, sloMs: 5 }] }],
      profile,
      undefined,
      { seconds: 400, seed: 3, spread: 0 },
    );
    const expected = 1 + (rho * 1) / (2 * (1 - rho));
    assert.ok(Math.abs(f.meanMs - expected) / expected < 0.04, `ρ ${rho}: mean ${f.meanMs} ms, M/D/1 ${expected} ms`);
    assert.ok(Math.abs(f.busy - rho) < 0.02, `busy ${f.busy} at ρ ${rho}`);
  }
});

Deno.test("request sim: burstier arrivals (Gamma CV 2) and spread service times lengthen the tail", () => {
  const run = (cv: number, spread: number) =>
    replayGpu(
      [{ part: 100, functions: [{ name: "f", model: "m", batch: 1, rate: 600, sloMs: 3 }] }],
      profile,
      undefined,
      { seconds: 100, seed: 5, cv, spread },
    )[0];
  const poisson = run(1, 0), bursty = run(2, 0), spread = run(1, 0.5);
  assert.ok(bursty.p99Ms > 1.5 * poisson.p99Ms, `p99 ${bursty.p99Ms} vs ${poisson.p99Ms}`);
  assert.ok(bursty.within < poisson.within);
  assert.ok(spread.p99Ms > poisson.p99Ms, `p99 ${spread.p99Ms} vs ${poisson.p99Ms}`);
});

Deno.test("request sim: a time-shared gpu-let serves its functions in turns; batches grow with load", () => {
  const [a, b] = replayGpu(
    [{
      part: 100,
      functions: [
        { name: "a", model: "n", batch: 8, rate: 400, sloMs: 50 },
        { name: "b", model: "n", batch: 8, rate: 400, sloMs: 50 },
      ],
    }],
    profile,
    undefined,
    { seconds: 30, seed: 7, spread: 0 },
  );
  // Both are served (neither starves) and, sharing one gpu-let, each waits for the other's batches.
  assert.ok(a.n > 11_000 && b.n > 11_000, `${a.n}, ${b.n}`);
  assert.ok(Math.abs(a.p99Ms - b.p99Ms) / a.p99Ms < 0.25, `${a.p99Ms} vs ${b.p99Ms}`);
  assert.ok(a.meanRows > 1.5 && a.meanRows <= 8, `mean rows ${a.meanRows}`);
  const [light] = replayGpu(
    [{ part: 100, functions: [{ name: "a", model: "n", batch: 8, rate: 20, sloMs: 50 }] }],
    profile,
    undefined,
    { seconds: 30, seed: 7, spread: 0 },
  );
  assert.ok(light.meanRows < 1.1, `at low load batches are single requests: ${light.meanRows}`);
  assert.deepEqual(preparedSizes(6), [1, 2, 4, 6]);
  assert.deepEqual(preparedSizes(1), [1]);
});
