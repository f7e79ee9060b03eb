/**
 * A monotone planner: when `--peak` claims a rate multiplier P, a plan at every fraction 0.1–1.0 of P serves
 * all demand. Over the shipped workloads on the shipped H100 and H200 profiles, and random workloads.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { PlanProblem } from "../../src/planner/planner.ts";
import { makePlan, peakFor } from "../../src/planner/policies.ts";
import type { PlannedFunction } from "../../src/planner/sizing.ts";
import { parseWorkload, plannedFunctions, scaled } from "../../src/planner/workload.ts";
import { profile, ROOT } from "../helpers.ts";

const FRACTIONS = Array.from({ length: 10 }, (_, i) => (i + 1) / 10);

/** The fractions of the claimed peak at which the plan leaves demand unserved; null when it claims none. */
function shortfalls(problem: PlanProblem): number[] | null {
  const peak = peakFor(problem, "gpulet");
  if (peak.scale === 0) return null;
  return FRACTIONS.filter((f) =>
    !makePlan({ ...problem, functions: scaled(problem.functions, peak.scale * f) }, "gpulet").feasible
  );
}

Deno.test("planner: every fraction of the claimed peak is served in full (shipped workloads, H100 and H200)", async () => {
  const failures: string[] = [];
  let checked = 0;
  for (const name of ["h100", "h200"]) {
    const { latency, interference } = await profile(name);
    for (const entry of [...Deno.readDirSync(`${ROOT}/resource/workloads`)].map((e) => e.name).sort()) {
      const file = `${ROOT}/resource/workloads/${entry}`;
      const workload = parseWorkload(await Deno.readTextFile(file), file);
      if (workload.apps?.length) continue; // an app workload's peak scales its apps: app_demand_test.ts
      const functions = plannedFunctions(workload, latency, file);
      for (const gpus of [1, workload.gpus]) {
        const missed = shortfalls({ device: name, gpus, functions, latency, interference });
        if (missed) checked++;
        if (missed?.length) failures.push(`${name} ${entry} on ${gpus} GPU(s): unserved at ${missed.join(", ")}× peak`);
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked >= 20, `${checked} workloads had a peak to check`);
});

Deno.test("planner: every fraction of the claimed peak is served in full (random workloads, H200)", async () => {
  const { latency, interference } = await profile("h200");
  const models = latency.models();
  let checked = 0;
  const fn = fc.record({
    model: fc.constantFrom(...models),
    sloFactor: fc.double({ min: 2, max: 8, noNaN: true }),
    weight: fc.double({ min: 0.2, max: 4, noNaN: true }),
  });
  fc.assert(
    fc.property(fc.array(fn, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 2 }), (fs, gpus) => {
      const functions: PlannedFunction[] = fs.map((f, i) => ({
        name: `f${i}`,
        model: f.model,
        rate: 100 * f.weight,
        sloMs: f.sloFactor * latency.latency(f.model, 100, 1),
        maxBatch: 32,
      }));
      const missed = shortfalls({ device: "h200", gpus, functions, latency, interference });
      if (missed) checked++;
      assert.deepEqual(missed ?? [], [], JSON.stringify({ functions, gpus }));
    }),
    { numRuns: 25, seed: 19 },
  );
  assert.ok(checked >= 15, `only ${checked} of 25 random workloads had a peak to check`);
});
