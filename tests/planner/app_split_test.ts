/**
 * An app's SLO split over its levels (`src/planner/app_split.ts`): budgets add up to the app's SLO, each
 * stage gets its level's budget at its fan-out's rate, and the chosen split plans no worse than the even one
 * (better on `traffic`, whose detector is cheap next to its two classifiers).
 */
import assert from "node:assert/strict";
import { type AppGraph, evenSplit, splitAppSlo, stageFunctions } from "../../src/planner/app_split.ts";
import { betterPlan, planWithEngine } from "../../src/planner/planner.ts";
import { totalPart } from "../../src/planner/plan.ts";
import { profile } from "../helpers.ts";

const { latency, interference } = await profile("h100");
const problem = { device: "h100", gpus: 8, latency, interference };

// The seed's apps on the H100 profile: its SLOs × 0.06 (as resource/workloads/game.json); ssd is served by
// mobilenet_v2, its backbone; two crops per frame.
const traffic: AppGraph = {
  name: "traffic",
  sloMs: 202 * 0.06,
  levels: [
    [{ name: "detect", model: "mobilenet_v2", maxBatch: 32, fanOut: 1 }],
    [
      { name: "classify", model: "googlenet", maxBatch: 32, fanOut: 2 },
      { name: "recognise", model: "vgg16", maxBatch: 32, fanOut: 2 },
    ],
  ],
};
const game: AppGraph = {
  name: "game",
  sloMs: 108 * 0.06,
  levels: [[
    { name: "frame", model: "resnet50", maxBatch: 32, fanOut: 1 },
    { name: "digits", model: "lenet", maxBatch: 32, fanOut: 6 },
  ]],
};

Deno.test("app split: stages get their level's budget at the app's rate × fan-out; one level gets the whole SLO", () => {
  const fns = stageFunctions(traffic, [4, 8.12], 100);
  assert.deepEqual(fns.map((f) => [f.name, f.sloMs, f.rate]), [
    ["detect", 4, 100],
    ["classify", 8.12, 200],
    ["recognise", 8.12, 200],
  ]);
  const split = splitAppSlo(problem, game, 500);
  assert.deepEqual(split.budgetsMs, [game.sloMs]);
  assert.ok(split.plan.feasible);
});

Deno.test("app split: the planner's split of traffic's SLO needs less of the GPUs than the even split", () => {
  const rate = 1000;
  const split = splitAppSlo(problem, traffic, rate);
  assert.ok(Math.abs(split.budgetsMs.reduce((a, b) => a + b, 0) - traffic.sloMs) < 1e-9, "budgets add up to the SLO");
  const evenFns = stageFunctions(traffic, evenSplit(traffic), rate);
  const even = planWithEngine({ ...problem, functions: evenFns }, "gpulet");
  assert.ok(split.plan.feasible && even.feasible);
  assert.ok(!betterPlan(even, split.plan, evenFns), "never worse than the even split");
  assert.ok(totalPart(split.plan) < totalPart(even), `${totalPart(split.plan)} % vs ${totalPart(even)} % of the GPUs`);
  // The detector is cheap: it gets less than half the budget.
  assert.ok(split.budgetsMs[0] < traffic.sloMs / 2, JSON.stringify(split.budgetsMs));
});
