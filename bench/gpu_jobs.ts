/**
 * `deno run -A bench/gpu_jobs.ts [OUTDIR]`: the jobs of the H200 verification (`bench/results/gpu_replay.md`):
 * for each mix, the gpulet plan for one H200 at 0.5×, 0.9× and 1.0× the peak `plan --peak --gpus 1` claims
 * (`FRACS=…` to change), as `../shared/tools/gpu_replay/` jobs, with what the request-level simulator predicts.
 * Also writes the two random mixes (seed 2026) to `resource/fidelity/h200/workloads/`.
 */
import { loadProfile } from "../src/planner/profiles.ts";
import { DEFAULT_OPTIONS } from "../src/planner/planner.ts";
import { makePlan, peakFor } from "../src/planner/policies.ts";
import { parseWorkload, plannedFunctions, scaled } from "../src/planner/workload.ts";
import { seededRandom } from "../src/planner/random.ts";
import { replayGpu } from "../src/sim/request_sim.ts";
import { planGpulets } from "../src/sim/plan_replay.ts";
const { latency, interference } = await loadProfile("profiles", "h200");
const out = Deno.args[0] ?? "bench/results/gpu_replay_tail5";
Deno.mkdirSync(out, { recursive: true });
// Two random mixes of the zoo models, seeded, written beside the fidelity workloads.
const rnd = seededRandom(2026);
const models = ["lenet", "googlenet", "resnet50", "vgg16", "mobilenet_v2", "densenet161", "mnasnet1_0", "bert"];
for (const name of ["rand1", "rand2"]) {
  const pick = [...models].sort(() => rnd() - 0.5).slice(0, 3 + Math.floor(rnd() * 2));
  const functions = pick.map((m) => ({
    name: m,
    model: m,
    rate: 100 * (1 + Math.floor(rnd() * 3)),
    sloMs: Number((latency.latency(m, 100, 1) * (2.5 + 5.5 * rnd()) + 0.3).toFixed(2)),
  }));
  Deno.writeTextFileSync(
    `resource/fidelity/h200/workloads/${name}.json`,
    JSON.stringify(
      {
        device: "h200",
        gpus: 1,
        description: `${name}: a random mix of zoo models (seed 2026), SLO 2.5–8× batch-1 latency + 0.3 ms`,
        functions,
      },
      null,
      2,
    ) + "\n",
  );
}
const files = [
  "resource/workloads/game.json",
  "resource/workloads/scen2.json",
  "resource/workloads/scen3.json",
  "resource/workloads/scen4.json",
  "resource/workloads/scen5.json",
  ...["hw1-vision", "hw2-nlp", "hw4-shared", "rand1", "rand2"].map((w) => `resource/fidelity/h200/workloads/${w}.json`),
];
for (const file of files) {
  const wname = file.split("/").pop()!.replace(".json", "");
  const functions = plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file);
  const problem = { device: "h200", gpus: 1, functions, latency, interference };
  const peak = peakFor(problem, "gpulet", DEFAULT_OPTIONS);
  for (const frac of (Deno.env.get("FRACS") ?? "0.5,0.9,1").split(",").map(Number)) {
    const plan = makePlan({ ...problem, functions: scaled(functions, frac * peak.scale) }, "gpulet", DEFAULT_OPTIONS);
    // The harness's job: the replayable gpu-lets, each function with the batch latency the plan expects.
    const gpu = plan.gpus[0];
    const gpulets = gpu
      ? planGpulets(gpu, new Map(functions.map((f) => [f.name, f]))).map((g, gi) => ({
        ...g,
        functions: g.functions.map((f, fi) => ({ ...f, plannedLatencyMs: gpu.gpulets[gi].functions[fi].latencyMs })),
      }))
      : [];
    const job = {
      workload: wname,
      policy: "gpulet",
      frac,
      peak: peak.aggregateRate,
      duration: 15,
      unserved: plan.unserved,
      gpulets,
    };
    const jname = `${wname}__gpulet_f${frac}`;
    if (gpulets.length) Deno.writeTextFileSync(`${out}/${jname}.json`, JSON.stringify(job, null, 1));
    const sim = gpulets.length ? replayGpu(gpulets, latency, interference, { seconds: 15, seed: 1 }) : [];
    const worst = sim.reduce((w, f) => Math.min(w, f.within), 1);
    console.log(
      `${jname}: peak ${peak.aggregateRate.toFixed(0)}, at ${
        (frac * peak.aggregateRate).toFixed(0)
      }/s, unserved ${plan.unserved.length}, sim worst ${(100 * worst).toFixed(2)} % | ` +
        gpulets.map((g) =>
          `${g.part}%:` + g.functions.map((f) => `${f.name}b${f.batch}@${f.rate.toFixed(0)}`).join(",")
        ).join(" | "),
    );
  }
}
