/**
 * The planner's policies on cases whose answer is known by hand, the validator on broken plans, and every
 * plan any policy emits here passing the validator.
 */
import assert from "node:assert/strict";
import { InterferenceModel } from "../../src/planner/interference.ts";
import { LatencyModel, loadLatencyModel } from "../../src/planner/latency_model.ts";
import { loadPairs, observations } from "../../src/planner/pairs.ts";
import type { Plan, Policy } from "../../src/planner/plan.ts";
import { AVERAGES_OPTIONS } from "../../src/planner/planner.ts";
import { makePlan, peakFor } from "../../src/planner/policies.ts";
import { LatencyTable, saturated, sizeGpulet } from "../../src/planner/sizing.ts";
import { validatePlan } from "../../src/planner/validate.ts";
import { parseWorkload, plannedFunctions, WorkloadError } from "../../src/planner/workload.ts";
import { ROOT } from "../helpers.ts";

/** A toy device: latency = 1 ms + 1 ms per item at 100 %, the work part scales with 1/part. */
function toyProfile(): LatencyModel {
  const rows = ["model,part,batch,latency_ms"];
  for (const part of [25, 50, 100]) {
    for (const b of [1, 2, 4, 8, 16, 32]) rows.push(`toy,${part},${b},${1 + (b * 100) / part}`);
  }
  return LatencyModel.parse(rows.join("\n"), "toy.csv");
}

/** The duty-cycle rule alone (no tail target): the arithmetic these toy cases check by hand. */
const DUTY = AVERAGES_OPTIONS;

const toyFn = (name: string, rate: number, sloMs = 20) => ({ name, model: "toy", rate, sloMs, maxBatch: 32 });

function checked(
  plan: Plan,
  functions: ReturnType<typeof toyFn>[],
  latency: LatencyModel,
  gpus: number,
  im?: InterferenceModel,
) {
  assert.deepEqual(validatePlan(plan, { functions, latency, interference: im, gpus }), [], JSON.stringify(plan));
  return plan;
}

Deno.test("sizing: saturated batch and rate by hand; a time-shared gpu-let fits both functions in one cycle", () => {
  const table = new LatencyTable(toyProfile());
  // At 100 %: L(b) = 1 + b; 2·L ≤ 20 → b = 9 (L 10), rate 900/s; batch 9 is interpolated between 8 and 16.
  const s = saturated(table, toyFn("a", 1), 100);
  assert.equal(s.batch, 9);
  assert.ok(Math.abs(s.rate - 900) < 1e-9);
  // Two functions at 100/s each: cycle d, batches ⌈d/10⌉, d + Σ L ≤ 20 and Σ L ≤ d.
  const g = sizeGpulet(table, 100, [{ fn: toyFn("a", 100), rate: 100, alpha: 1 }, {
    fn: toyFn("b", 100),
    rate: 100,
    alpha: 1,
  }])!;
  const work = g.assignments.reduce((x, a) => x + a.latencyMs, 0);
  assert.ok(work <= g.dutyMs && g.dutyMs + work <= 20 + 1e-9, JSON.stringify(g));
  for (const a of g.assignments) assert.ok((1000 * a.batch) / g.dutyMs >= 100 - 1e-9);
  // At 1000/s a single function cannot time-share with another one of 1000/s on 25 % (L(1) = 5).
  assert.equal(
    sizeGpulet(table, 25, [{ fn: toyFn("a", 1000), rate: 1000, alpha: 1 }, {
      fn: toyFn("b", 1000),
      rate: 1000,
      alpha: 1,
    }]),
    undefined,
  );
});

Deno.test("toy device: whole GPUs for timeshare, unserved demand listed, small functions time-share one gpu-let", () => {
  const latency = toyProfile();
  // 25 %: L(b) = 1 + 4b; 2·L ≤ 20 → b = 2 (L 9), 222/s per 25 % = 889/s per GPU; at 100 %: 900/s per GPU.
  const fns = [toyFn("a", 1800)];
  const ts = checked(makePlan({ device: "toy", gpus: 4, functions: fns, latency }, "timeshare", DUTY), fns, latency, 4);
  assert.equal(ts.gpusUsed, 2);
  assert.ok(ts.gpus.every((g) => g.gpulets.length === 1 && g.gpulets[0].part === 100));
  const noint = checked(
    makePlan({ device: "toy", gpus: 4, functions: fns, latency }, "gpulet-noint", DUTY),
    fns,
    latency,
    4,
  );
  assert.equal(noint.gpusUsed, 2);
  // Too much demand for the GPUs: the rest is listed as unserved, never silently dropped.
  const over = makePlan({ device: "toy", gpus: 1, functions: [toyFn("a", 1000)], latency }, "timeshare", DUTY);
  assert.equal(over.feasible, false);
  assert.ok(Math.abs(over.unserved[0].rate - 100) < 1e-6, JSON.stringify(over.unserved));
  // Three small functions time-share one whole GPU.
  const small = [toyFn("a", 50), toyFn("b", 50), toyFn("c", 50)];
  const shared = checked(
    makePlan({ device: "toy", gpus: 4, functions: small, latency }, "timeshare", DUTY),
    small,
    latency,
    4,
  );
  assert.equal(shared.gpusUsed, 1);
  assert.equal(shared.gpus[0].gpulets[0].functions.length, 3);
  // Greedy gives each the smallest part that serves it, no time-sharing.
  const greedy = checked(
    makePlan({ device: "toy", gpus: 4, functions: small, latency }, "gpulet-noint", DUTY),
    small,
    latency,
    4,
  );
  assert.equal(greedy.gpusUsed, 1);
});

Deno.test("bound: % needed by hand, and its peak on the toy device", () => {
  const latency = toyProfile();
  // Best rate per %: 25 % gives 222.2/s (8.89/s per %), 50 %: L = 1 + 2b, b = 4 (L 9), 444/s (8.89/%), 100 %: 9/%.
  const peak = peakFor({ device: "toy", gpus: 2, functions: [toyFn("a", 100)], latency }, "bound", DUTY);
  assert.ok(Math.abs(peak.scale - 18) < 1e-6, String(peak.scale));
});

const latencyH100 = await loadLatencyModel(`${ROOT}/profiles/h100.csv`);
const interference = InterferenceModel.fit(
  latencyH100,
  observations(await loadPairs(`${ROOT}/profiles/h100-pairs.csv`)),
);

Deno.test("H100 workloads: every policy's plan passes the validator (gpulet-noint's without interference), gpulet peaks above timeshare", async () => {
  const file = `${ROOT}/resource/workloads/scen1.json`;
  const fns = plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latencyH100, file)
    .map((f) => ({ ...f, rate: f.rate * 8 }));
  const problem = { device: "h100", gpus: 4, functions: fns, latency: latencyH100, interference };
  for (const policy of ["timeshare", "greedy", "gpulet", "ideal"] as Policy[]) {
    const plan = makePlan(problem, policy);
    assert.deepEqual(validatePlan(plan, { functions: fns, latency: latencyH100, interference, gpus: 4 }), [], policy);
    assert.ok(plan.feasible, `${policy} serves scen1 × 8`);
  }
  const blind = makePlan(problem, "gpulet-noint");
  assert.deepEqual(validatePlan(blind, { functions: fns, latency: latencyH100, gpus: 4 }), []);
  const gpulet = peakFor(problem, "gpulet").scale;
  const timeshare = peakFor(problem, "timeshare").scale;
  assert.ok(gpulet > timeshare, `gpulet peak ${gpulet} > timeshare ${timeshare}`);
});

Deno.test("validator: broken plans are rejected with the rule they break", () => {
  const latency = toyProfile();
  const fns = [toyFn("a", 900)];
  const good = makePlan({ device: "toy", gpus: 1, functions: fns, latency }, "timeshare", DUTY);
  const v = (p: Plan) => validatePlan(p, { functions: fns, latency, gpus: 1 });
  assert.deepEqual(v(good), []);
  const clone = () => structuredClone(good);
  const over = clone();
  over.gpus[0].gpulets.push({ part: 50, functions: [] });
  assert.match(v(over).join("\n"), /parts add up to 150/);
  const fast = clone();
  fast.gpus[0].gpulets[0].functions[0].latencyMs = 1;
  assert.match(v(fast).join("\n"), /claims 1 ms/);
  const rate = clone();
  rate.gpus[0].gpulets[0].functions[0].rate = 5000;
  assert.match(v(rate).join("\n"), /exceeds batch/);
  const lost = clone();
  lost.gpus[0].gpulets[0].functions[0].rate = 100;
  assert.match(v(lost).join("\n"), /< demanded 900/);
  const slo = clone();
  slo.gpus[0].gpulets[0].functions[0].dutyMs = 15;
  assert.match(v(slo).join("\n"), /SLO 20 ms/);
});

Deno.test("workload files: each mistake gets one precise error", () => {
  const w = (functions: unknown) => JSON.stringify({ device: "h100", gpus: 4, functions });
  const check = (text: string, re: RegExp) =>
    assert.throws(() => plannedFunctions(parseWorkload(text, "w.json"), latencyH100, "w.json"), (e: Error) => {
      assert.ok(e instanceof WorkloadError);
      assert.match(e.message, re);
      return true;
    });
  check(w([{ name: "a", model: "alexnet", rate: 1, sloMs: 10 }]), /model "alexnet" has no profile/);
  check(w([{ name: "a", model: "resnet50", rate: -1, sloMs: 10 }]), /rate/);
  check(w([{ name: "a", model: "resnet50", rate: 1, sloMs: 0.5 }]), /sloMs 0.5 is below what resnet50 can meet/);
  check(
    w([{ name: "a", model: "lenet", rate: 1, sloMs: 1 }, { name: "a", model: "lenet", rate: 1, sloMs: 1 }]),
    /unique/,
  );
  check("{", /not JSON/);
});
