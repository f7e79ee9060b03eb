/**
 * Planning off the serving loop: a re-plan made in the planner's worker gives the plan the same re-plan gives
 * on this thread, and the work is not done on this thread (its tail answers stay empty). How long the loop
 * stays free is a speed question, measured in `bench planner`, not here.
 */
import assert from "node:assert/strict";
import { planDemand } from "../../src/autoscaler/plan_demand.ts";
import { PlanTimeoutError, RemotePlanner } from "../../src/autoscaler/remote_planner.ts";
import { LatencyTable } from "../../src/planner/sizing.ts";
import { DEFAULT_TAIL } from "../../src/planner/tail.ts";
import { parseWorkload, plannedFunctions, scaled } from "../../src/planner/workload.ts";
import { profile, ROOT } from "../helpers.ts";
import { splitAppSlo } from "../../src/planner/app_split.ts";
import { TRAFFIC } from "../../src/planner/seed_apps.ts";

Deno.test("planner worker: the same plan as on this thread, planned elsewhere", async () => {
  const { latency, interference } = await profile("h100");
  const file = `${ROOT}/resource/workloads/game.json`;
  const functions = scaled(plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file), 40);
  const context = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const request = { functions, compact: false, headroom: 0.1 };
  const planner = new RemotePlanner(context);
  try {
    const remote = await planner.plan(request);
    // The planning happened elsewhere: this thread's tail answers for the profile are still empty.
    assert.equal(LatencyTable.shared(latency, 1, DEFAULT_TAIL).saturations.size, 0);
    const local = planDemand(context, request);
    assert.ok(LatencyTable.shared(latency, 1, DEFAULT_TAIL).saturations.size > 0);
    assert.deepEqual(remote, local);
    assert.ok(remote.feasible && remote.gpusUsed > 1, JSON.stringify(remote.unserved));
    // A second re-plan reuses the worker (and what it remembered).
    assert.deepEqual(
      await planner.plan({ ...request, functions: scaled(functions, 0.9) }),
      planDemand(context, { ...request, functions: scaled(functions, 0.9) }),
    );
  } finally {
    planner.close();
  }
});

Deno.test("planner worker: a re-plan past the time bound fails (not moved onto this thread); the next one plans", async () => {
  const { latency, interference } = await profile("h100");
  const file = `${ROOT}/resource/workloads/game.json`;
  const functions = scaled(plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file), 40);
  const context = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const request = { functions, compact: false, headroom: 0.1 };
  const lines: string[] = [];
  // 1 ms: the worker cannot even start in time.
  const hasty = new RemotePlanner(context, (l) => lines.push(l), 1);
  try {
    await assert.rejects(hasty.plan(request), PlanTimeoutError);
    assert.match(lines.join("\n"), /did not answer in 1 ms/);
  } finally {
    hasty.close();
  }
  const planner = new RemotePlanner(context, () => {}, 60_000);
  try {
    assert.ok((await planner.plan(request)).feasible);
  } finally {
    planner.close();
  }
});

Deno.test("remote planner: an app's SLO split is made in the worker, the same as on this thread", async () => {
  const { latency, interference } = await profile("h100");
  const context = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const planner = new RemotePlanner(context);
  try {
    const remote = await planner.split(TRAFFIC, 1000);
    const local = splitAppSlo(context, TRAFFIC, 1000, "gpulet").budgetsMs;
    assert.deepEqual(remote, local);
    assert.ok(Math.abs(remote.reduce((a, b) => a + b, 0) - TRAFFIC.sloMs) < 1e-9);
    // Traffic's detector is cheap next to its classifiers: it gets less than half (bench apps: 3.64 + 8.48).
    assert.ok(remote[0] < remote[1], JSON.stringify(remote));
  } finally {
    planner.close();
  }
});
