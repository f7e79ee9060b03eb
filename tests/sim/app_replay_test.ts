/**
 * Apps request by request (`src/sim/app_replay.ts`, `simulate --plan` with an app workload): each level's
 * calls go out when the level before has answered, the app is judged end to end, and a plan made for the
 * app's rate keeps its SLO at that rate; calls no gpu-let serves are counted as shed, never lost.
 */
import assert from "node:assert/strict";
import { planWithApps, workloadApps } from "../../src/planner/app_demand.ts";
import { parseWorkload, plannedFunctions } from "../../src/planner/workload.ts";
import { replayAppPlan, replayApps } from "../../src/sim/app_replay.ts";
import { profile, ROOT, runTask as cli } from "../helpers.ts";

const { latency, interference } = await profile("h100");
const MODELS = ["--profile", `${ROOT}/profiles/h100.csv`, "--pairs", `${ROOT}/profiles/h100-pairs.csv`];

async function planned(name: string, gpus = 8) {
  const file = `${ROOT}/resource/workloads/${name}.json`;
  const w = parseWorkload(await Deno.readTextFile(file), file);
  const functions = plannedFunctions(w, latency, file);
  const apps = workloadApps(w, functions, file);
  const { plan } = planWithApps({ device: "h100", gpus, functions, latency, interference }, apps, "gpulet");
  return { functions, apps, plan };
}

Deno.test("app replay: traffic's plan keeps 99 % of app requests within the app's SLO; each request is whole", async () => {
  const { plan, functions, apps } = await planned("traffic-app");
  const r = replayAppPlan(plan, functions, apps, latency, interference, { seconds: 10, seed: 3 })!;
  const [app] = r.apps;
  assert.ok(app.n > 4500 && app.n < 5500, `${app.n} requests in 10 s at 500/s`);
  assert.equal(app.shed, 0);
  assert.ok(app.within >= 0.99, JSON.stringify(app));
  const fn = new Map(r.functions.map((f) => [f.name, f]));
  // Every request made its four detector calls and two of each classifier.
  assert.equal(fn.get("mobilenet_v2")!.n, 4 * app.n);
  assert.equal(fn.get("vgg16")!.n, 2 * app.n);
  // End to end covers both levels: longer than either level's calls.
  assert.ok(app.p50Ms > fn.get("mobilenet_v2")!.p50Ms + Math.min(fn.get("vgg16")!.p50Ms, fn.get("googlenet")!.p50Ms));
});

Deno.test("app replay: an app whose stage no gpu-let serves counts its requests shed, not within SLO", async () => {
  const { plan, functions, apps } = await planned("game-app");
  const noLenet = {
    ...plan,
    gpus: plan.gpus.map((g) => ({
      ...g,
      gpulets: g.gpulets.map((l) => ({ ...l, functions: l.functions.filter((f) => f.name !== "lenet") })),
    })),
  };
  const r = replayApps(
    noLenet,
    functions.map((f) => ({ name: f.name, model: f.model, sloMs: 6.48, directRate: 0 })),
    apps.map((a) => ({
      ...a,
      levels: a.levels.map((l) => l.map((s) => ({ function: s.function, fanOut: s.fanOut }))),
    })),
    latency,
    interference,
    { seconds: 2, seed: 1 },
  );
  assert.ok(r.apps[0].n > 1500, JSON.stringify(r.apps[0]));
  assert.equal(r.apps[0].shed, r.apps[0].n);
  assert.equal(r.apps[0].within, 0);
  assert.equal(r.functions.find((f) => f.name === "lenet")!.shed, 6 * r.apps[0].n);
});

Deno.test("simulate --plan with an app workload prints each app end to end beside its functions", async () => {
  const workload = `${ROOT}/resource/workloads/traffic-app.json`;
  const plan = await cli("plan", [...MODELS, "--workload", workload, "--json"]);
  assert.equal(plan.code, 0, plan.err);
  assert.ok(JSON.parse(plan.out).appSplits?.[0]?.budgetsMs?.length === 2, plan.out);
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(file, plan.out);
  const sim = await cli("simulate", [...MODELS, "--plan", file, "--workload", workload, "--seconds", "3"]);
  assert.equal(sim.code, 0, sim.err);
  assert.match(sim.out, /^app +traffic +\d/m);
  assert.match(sim.out, /^function +vgg16 +\d/m);
  // A plan without the app's split cannot be judged end to end: said so.
  const bare = { ...JSON.parse(plan.out), appSplits: undefined };
  await Deno.writeTextFile(file, JSON.stringify(bare));
  const refused = await cli("simulate", [...MODELS, "--plan", file, "--workload", workload]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /no split for every one/);
  await Deno.remove(file);
});
