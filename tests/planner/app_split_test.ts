/**
 * An app's SLO split over its levels (`src/planner/app_split.ts`): budgets add up to the app's SLO, each
 * stage gets its level's budget at its fan-out's rate, and the chosen split plans no worse than the even one
 * (better on `traffic`, whose detector is cheap next to its two classifiers).
 */
import assert from "node:assert/strict";
import { evenSplit, splitAppSlo, stageFunctions } from "../../src/planner/app_split.ts";
import { GAME, TRAFFIC } from "../../src/planner/seed_apps.ts";
import { betterPlan, planWithEngine } from "../../src/planner/planner.ts";
import { totalPart } from "../../src/planner/plan.ts";
import { profile } from "../helpers.ts";

const { latency, interference } = await profile("h100");
const problem = { device: "h100", gpus: 8, latency, interference };

Deno.test("app split: stages get their level's budget at the app's rate × fan-out; one level gets the whole SLO", () => {
  const fns = stageFunctions(TRAFFIC, [4, 8.12], 100);
  assert.deepEqual(fns.map((f) => [f.name, f.sloMs, f.rate]), [
    ["detect", 4, 100],
    ["classify", 8.12, 200],
    ["recognise", 8.12, 200],
  ]);
  const split = splitAppSlo(problem, GAME, 500);
  assert.deepEqual(split.budgetsMs, [GAME.sloMs]);
  assert.ok(split.plan.feasible);
});

Deno.test("app split: the planner's split of traffic's SLO needs less of the GPUs than the even split", () => {
  const rate = 1000;
  const split = splitAppSlo(problem, TRAFFIC, rate);
  assert.ok(Math.abs(split.budgetsMs.reduce((a, b) => a + b, 0) - TRAFFIC.sloMs) < 1e-9, "budgets add up to the SLO");
  const evenFns = stageFunctions(TRAFFIC, evenSplit(TRAFFIC), rate);
  const even = planWithEngine({ ...problem, functions: evenFns }, "gpulet");
  assert.ok(split.plan.feasible && even.feasible);
  assert.ok(!betterPlan(even, split.plan, evenFns), "never worse than the even split");
  assert.ok(totalPart(split.plan) < totalPart(even), `${totalPart(split.plan)} % vs ${totalPart(even)} % of the GPUs`);
  // The detector is cheap: it gets less than half the budget.
  assert.ok(split.budgetsMs[0] < TRAFFIC.sloMs / 2, JSON.stringify(split.budgetsMs));
});
