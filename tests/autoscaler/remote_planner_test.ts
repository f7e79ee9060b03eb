/**
 * Planning off the serving loop: a re-plan made in the planner's worker gives the plan the same re-plan gives
 * on this thread, and a timer on this thread keeps firing on time while the worker plans.
 */
import assert from "node:assert/strict";
import { planDemand } from "../../src/autoscaler/plan_demand.ts";
import { RemotePlanner } from "../../src/autoscaler/remote_planner.ts";
import { parseWorkload, plannedFunctions, scaled } from "../../src/planner/workload.ts";
import { ROOT } from "../helpers.ts";
import { loadProfile } from "../../src/planner/profiles.ts";

Deno.test("planner worker: the same plan as on this thread, and the serving loop keeps its timers", async () => {
  const { latency, interference } = await loadProfile(`${ROOT}/profiles`, "h100");
  const file = `${ROOT}/resource/workloads/game.json`;
  const functions = scaled(plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file), 40);
  const context = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const request = { functions, compact: false, headroom: 0.1 };
  const planner = new RemotePlanner(context);
  try {
    // A timer every 5 ms on this thread: the largest gap between its firings while the worker plans.
    let last = performance.now(), worst = 0, fired = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      fired++;
    }, 5);
    const t0 = performance.now();
    const remote = await planner.plan(request);
    const ms = performance.now() - t0;
    clearInterval(timer);
    const local = planDemand(context, request);
    assert.deepEqual(remote, local);
    assert.ok(remote.feasible && remote.gpusUsed > 1, JSON.stringify(remote.unserved));
    // The cold plan takes far longer than a tick; the loop never waits for it.
    assert.ok(fired >= 3, `${fired} ticks in ${ms} ms`);
    assert.ok(worst < Math.max(60, ms / 2), `the loop stalled ${worst} ms while planning took ${ms} ms`);
    // A second re-plan reuses the worker (and what it remembered).
    assert.deepEqual(
      await planner.plan({ ...request, functions: scaled(functions, 0.9) }),
      planDemand(context, { ...request, functions: scaled(functions, 0.9) }),
    );
  } finally {
    planner.close();
  }
});
