/**
 * `simulate --plan`: a fixed plan replayed request by request, from the planner's own plan JSON (with its
 * workload) and from the GPU replay harness's job format; mistakes get one precise message.
 */
import assert from "node:assert/strict";
import { replayGpus } from "../../src/sim/plan_replay.ts";
import { ROOT, runTask as cli } from "../helpers.ts";

const MODELS = ["--profile", `${ROOT}/profiles/h100.csv`, "--pairs", `${ROOT}/profiles/h100-pairs.csv`];
const WORKLOAD = `${ROOT}/resource/workloads/scen1.json`;

/** scen1's plan on two H100s (`plan --json`), made once for the tests that replay it. */
let scen1Plan: ReturnType<typeof cli> | undefined;
const planScen1 = () => scen1Plan ??= cli("plan", [...MODELS, "--workload", WORKLOAD, "--gpus", "2", "--json"]);

Deno.test("simulate --plan replays the planner's plan: every function served, with its tail", async () => {
  const plan = await planScen1();
  assert.equal(plan.code, 0, plan.err);
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(file, plan.out);
  const sim = await cli("simulate", [...MODELS, "--plan", file, "--workload", WORKLOAD, "--seconds", "10", "--json"]);
  assert.equal(sim.code, 0, sim.err);
  const report = JSON.parse(sim.out);
  const served = JSON.parse(plan.out).gpus.flatMap((g: { gpulets: { functions: { name: string }[] }[] }) =>
    g.gpulets.flatMap((l) => l.functions.map((f) => f.name))
  );
  const replayed = report.gpus.flat() as { name: string; n: number; p50Ms: number; p99Ms: number; within: number }[];
  assert.deepEqual(replayed.map((f) => f.name).sort(), [...served].sort());
  for (const f of replayed) {
    assert.ok(f.n > 0 && f.p99Ms >= f.p50Ms && f.within >= 0 && f.within <= 1, JSON.stringify(f));
  }
  // Twice the planned rates: the same plan holds less of its SLO.
  const twice = await cli("simulate", [
    ...MODELS,
    "--plan",
    file,
    "--workload",
    WORKLOAD,
    "--seconds",
    "10",
    "--rate-scale",
    "2",
    "--json",
  ]);
  const within = (r: typeof report) =>
    r.gpus.flat().reduce((s: number, f: { within: number; n: number }) => s + f.within * f.n, 0) /
    r.gpus.flat().reduce((s: number, f: { n: number }) => s + f.n, 0);
  assert.ok(within(JSON.parse(twice.out)) < within(report));
  // The readable form ends with the overall share.
  const text = await cli("simulate", [...MODELS, "--plan", file, "--workload", WORKLOAD, "--seconds", "5"]);
  assert.match(text.out, /\d+ requests, [0-9.]+ % within SLO\n$/);
});

Deno.test("simulate --plan takes the GPU replay harness's job format; a plan without its workload is refused", async () => {
  const job = {
    gpulets: [
      { part: 50, functions: [{ name: "r", model: "resnet50", batch: 4, rate: 300, sloMs: 20 }] },
      { part: 50, functions: [{ name: "g", model: "googlenet", batch: 2, rate: 300, sloMs: 10 }] },
    ],
  };
  const gpus = replayGpus(job, undefined, "job.json");
  assert.equal(gpus.length, 1);
  assert.deepEqual(gpus[0].map((l) => l.functions[0].model), ["resnet50", "googlenet"]);
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(file, JSON.stringify(job));
  const sim = await cli("simulate", [...MODELS, "--plan", file, "--seconds", "5"]);
  assert.equal(sim.code, 0, sim.err);
  assert.match(sim.out, /^ +0 +50 +r +4 /m);
  assert.match(sim.out, /^ +0 +50 +g +2 /m);

  const plan = await planScen1();
  await Deno.writeTextFile(file, plan.out);
  const noWorkload = await cli("simulate", [...MODELS, "--plan", file]);
  assert.equal(noWorkload.code, 1);
  assert.match(noWorkload.err, /a plan needs --workload/);
  await Deno.writeTextFile(file, '{"gpulets": []}');
  const bad = await cli("simulate", [...MODELS, "--plan", file]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /neither a plan \(plan --json\) nor a replay job/);
});
