/**
 * A workload's apps as planner demand (`src/planner/app_demand.ts`): the app workloads shipped in
 * `resource/workloads/` plan with each app's SLO split and its calls added to its functions; a stage's
 * grouped calls are planned as burstier arrivals; mistakes in an app's graph get one precise message.
 */
import assert from "node:assert/strict";
import { appPeakScale, planWithApps, withAppCalls, workloadApps } from "../../src/planner/app_demand.ts";
import { groupDispersion } from "../../src/planner/app_split.ts";
import { LatencyTable, saturated } from "../../src/planner/sizing.ts";
import { DEFAULT_TAIL } from "../../src/planner/tail.ts";
import { parseWorkload, plannedFunctions, WorkloadError } from "../../src/planner/workload.ts";
import { profile, ROOT } from "../helpers.ts";

const { latency, interference } = await profile("h100");

async function appWorkload(name: string) {
  const file = `${ROOT}/resource/workloads/${name}.json`;
  const w = parseWorkload(await Deno.readTextFile(file), file);
  const functions = plannedFunctions(w, latency, file);
  return { w, functions, apps: workloadApps(w, functions, file) };
}

Deno.test("app demand: traffic's calls are added to its functions, each at its level's budget, its SLO split", async () => {
  const { functions, apps } = await appWorkload("traffic-app");
  assert.deepEqual(apps[0].levels.map((l) => l.map((s) => s.function)), [["mobilenet_v2"], ["googlenet", "vgg16"]]);
  const { plan, functions: planned, budgets } = planWithApps(
    { device: "h100", gpus: 8, functions, latency, interference },
    apps,
    "gpulet",
  );
  assert.ok(plan.feasible);
  const [split] = budgets;
  assert.equal(split.budgetsMs.length, 2);
  assert.ok(Math.abs(split.budgetsMs[0] + split.budgetsMs[1] - 12.12) < 1e-9, JSON.stringify(split));
  assert.deepEqual(plan.appSplits, budgets);
  const byName = new Map(planned.map((f) => [f.name, f]));
  // 500 frames/s: four quadrants each to the detector, two objects each to the classifiers.
  assert.deepEqual(planned.map((f) => [f.name, f.rate]), [["mobilenet_v2", 2000], ["googlenet", 1000], [
    "vgg16",
    1000,
  ]]);
  assert.equal(byName.get("mobilenet_v2")!.sloMs, split.budgetsMs[0]);
  assert.equal(byName.get("vgg16")!.sloMs, split.budgetsMs[1]);
  // Four calls at once are as bursty as arrivals of CV 2; two of CV √2.
  assert.equal(byName.get("mobilenet_v2")!.arrivalCv, 2);
  assert.ok(Math.abs(byName.get("googlenet")!.arrivalCv! - Math.SQRT2) < 1e-5);
  // Every served rate is what the demand asks.
  for (const f of planned) {
    const served = plan.gpus.flatMap((g) => g.gpulets.flatMap((l) => l.functions)).filter((x) => x.name === f.name)
      .reduce((s, x) => s + x.rate, 0);
    assert.ok(served >= f.rate * (1 - 1e-6), `${f.name}: ${served} of ${f.rate}`);
  }
});

Deno.test("app demand: direct callers and apps share a function; the tighter SLO wins and the mix is smoother", () => {
  const fn = { name: "lenet", model: "lenet", rate: 600, sloMs: 20, maxBatch: 32 };
  const app = { name: "game", rate: 100, sloMs: 6.48, levels: [[{ stage: "digits", function: "lenet", fanOut: 6 }]] };
  const [merged] = withAppCalls([fn], [app], [{ name: "game", rate: 100, sloMs: 6.48, budgetsMs: [6.48] }]);
  assert.equal(merged.rate, 1200);
  assert.equal(merged.sloMs, 6.48);
  // Half the calls in groups of six (dispersion 6), half alone (1): CV √3.5.
  assert.ok(Math.abs(merged.arrivalCv! - Math.sqrt(3.5)) < 1e-5, String(merged.arrivalCv));
  // A fractional fan-out (1.5 crops a frame on average: one or two) is less bursty than groups of two.
  assert.ok(groupDispersion(1.5, 1) > 1 && groupDispersion(1.5, 1) < groupDispersion(2, 1));
  assert.equal(groupDispersion(1, 1), 1);
});

Deno.test("app demand: grouped calls get less rate from the same gpu-let under the tail model", () => {
  const table = LatencyTable.shared(latency, 1, DEFAULT_TAIL);
  const fn = { name: "m", model: "mobilenet_v2", rate: 1, sloMs: 6, maxBatch: 32 };
  const alone = saturated(table, fn, 50);
  const grouped = saturated(table, { ...fn, arrivalCv: 2 }, 50);
  assert.ok(grouped.rate > 0 && grouped.rate < alone.rate, `${grouped.rate} vs ${alone.rate}`);
});

Deno.test("app demand: the app peak of game on one GPU plans in full below it and not above", async () => {
  const { functions, apps } = await appWorkload("game-app");
  const problem = { device: "h100", gpus: 1, functions, latency, interference };
  const scale = appPeakScale(problem, apps, "gpulet");
  assert.ok(scale > 0.5, String(scale));
  assert.ok(planWithApps(problem, apps, "gpulet", undefined, scale).plan.feasible);
  assert.ok(planWithApps(problem, apps, "gpulet", undefined, scale * 0.5).plan.feasible);
  assert.ok(!planWithApps(problem, apps, "gpulet", undefined, scale * 1.1).plan.feasible);
});

Deno.test("app demand: a graph that cannot run gets one precise message", async () => {
  const { w, functions } = await appWorkload("traffic-app");
  const withStages = (stages: unknown) => parseWorkload(JSON.stringify({ ...w, apps: [{ ...w.apps![0], stages }] }));
  const cases: [unknown, RegExp][] = [
    [[{ name: "a", function: "nope" }], /stage a calls nope, which is not in the functions/],
    [[{ name: "a", function: "vgg16", after: ["b"] }], /stage a waits for unknown b/],
    [[{ name: "a", function: "vgg16", after: ["b"] }, { name: "b", function: "vgg16", after: ["a"] }], /cycle/],
    [[{ name: "a", function: "vgg16" }, { name: "a", function: "googlenet" }], /stage names must be unique/],
  ];
  for (const [stages, message] of cases) {
    assert.throws(() => workloadApps(withStages(stages), functions, "w.json"), (e: Error) => {
      assert.ok(e instanceof WorkloadError && message.test(e.message), e.message);
      return true;
    });
  }
  const clash = parseWorkload(JSON.stringify({ ...w, apps: [{ ...w.apps![0], name: "vgg16" }] }));
  assert.throws(() => workloadApps(clash, functions), /taken by a function/);
});
