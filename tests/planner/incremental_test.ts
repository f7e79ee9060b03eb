/**
 * The incremental mode: a running plan follows moving demand with few gpu-lets started or stopped, scales in
 * when demand drops, and every plan it emits passes the validator with interference.
 */
import assert from "node:assert/strict";
import { layoutOf, replan } from "../../src/planner/incremental.ts";
import { gpuletChanges } from "../../src/planner/plan_diff.ts";
import { InterferenceModel } from "../../src/planner/interference.ts";
import { loadLatencyModel } from "../../src/planner/latency_model.ts";
import { loadPairs, observations } from "../../src/planner/pairs.ts";
import type { Plan } from "../../src/planner/plan.ts";
import { makePlan } from "../../src/planner/policies.ts";
import type { PlannedFunction } from "../../src/planner/sizing.ts";
import { validatePlan } from "../../src/planner/validate.ts";
import { parseWorkload, plannedFunctions, scaled } from "../../src/planner/workload.ts";
import { ROOT } from "../helpers.ts";

const latency = await loadLatencyModel(`${ROOT}/profiles/h100.csv`);
const interference = InterferenceModel.fit(latency, observations(await loadPairs(`${ROOT}/profiles/h100-pairs.csv`)));
const GPUS = 8;

async function workload(name: string): Promise<PlannedFunction[]> {
  const file = `${ROOT}/resource/workloads/${name}.json`;
  return plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file);
}

const problem = (functions: PlannedFunction[]) => ({ device: "h100", gpus: GPUS, functions, latency, interference });

function valid(plan: Plan, functions: PlannedFunction[], what: string): Plan {
  assert.deepEqual(validatePlan(plan, { functions, latency, interference, gpus: GPUS }), [], what);
  assert.ok(plan.feasible, `${what}: serves the demand`);
  return plan;
}

/** Starting loads: about half of what 8 GPUs serve (p99 plans), so demand can grow. */
const START: Record<string, number> = { scen1: 16, scen2: 40, scen4: 7, game: 100, all8: 1.2 };

Deno.test("replan: the same demand changes nothing; a plan's own layout reads back with its rates", async () => {
  for (const [name, scale] of Object.entries(START)) {
    const fns = scaled(await workload(name), scale);
    const plan = valid(makePlan(problem(fns), "gpulet"), fns, name);
    const again = valid(replan(problem(fns), plan), fns, `${name} again`);
    assert.equal(gpuletChanges(plan, again), 0, name);
    assert.equal(again.gpusUsed, plan.gpusUsed);
    const layout = layoutOf(plan, fns);
    assert.equal(layout.filter((g) => g.gpulets.length > 0).length, plan.gpusUsed);
  }
});

Deno.test("replan: one function's rate up 1.5x moves fewer gpu-lets than planning from scratch", async () => {
  let incremental = 0;
  let fresh = 0;
  for (const [name, scale] of Object.entries(START)) {
    const start = scaled(await workload(name), scale);
    const plan = makePlan(problem(start), "gpulet");
    for (let i = 0; i < start.length; i++) {
      const fns = start.map((f, j) => (j === i ? { ...f, rate: f.rate * 1.5 } : f));
      const next = valid(replan(problem(fns), plan), fns, `${name}: ${fns[i].name} up`);
      const scratch = makePlan(problem(fns), "gpulet");
      assert.ok(next.gpusUsed <= scratch.gpusUsed, `${name}: no more GPUs than a fresh plan`);
      incremental += gpuletChanges(plan, next);
      fresh += gpuletChanges(plan, scratch);
    }
  }
  assert.ok(incremental * 2 < fresh, `incremental ${incremental} gpu-let changes vs ${fresh} from scratch`);
});

Deno.test("replan: demand down to 40 % releases GPUs; back up, it serves again; GPU ids stay put", async () => {
  const start = scaled(await workload("scen1"), START.scen1);
  const plan = valid(makePlan(problem(start), "gpulet"), start, "start");
  const low = scaled(start, 0.4);
  const down = valid(replan(problem(low), plan), low, "down");
  assert.ok(down.gpusUsed < plan.gpusUsed, `${down.gpusUsed} GPUs < ${plan.gpusUsed}`);
  const up = valid(replan(problem(start), down), start, "up");
  assert.ok(up.gpusUsed >= down.gpusUsed);
  // Every id refers to a real GPU slot and is listed once.
  const ids = up.gpus.map((g) => g.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(ids.every((id) => id < GPUS));
});

Deno.test("replan: a removed function's gpu-lets go, a new function is placed", async () => {
  const all = scaled(await workload("scen1"), START.scen1);
  const plan = makePlan(problem(all.slice(0, 4)), "gpulet");
  const next = valid(replan(problem(all.slice(1)), plan), all.slice(1), "swap");
  const names = new Set(next.gpus.flatMap((g) => g.gpulets.flatMap((l) => l.functions.map((f) => f.name))));
  assert.ok(!names.has(all[0].name), `${all[0].name} is gone`);
  assert.ok(names.has(all[4].name), `${all[4].name} is placed`);
});
