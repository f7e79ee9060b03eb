/**
 * `deno run -A bench/gpu_replay.ts`: the report of the real-GPU replays in `bench/results/gpu_replay_tail{2,2b,3,4,5}/`
 * (issue 21: jobs from `bench/gpu_jobs.ts`) and `bench/results/gpu_replay/` (the first tail-aware plans, jobs
 * from `../shared/tools/gpu_replay/make_jobs.py`), run by `../shared/tools/gpu_replay/replay.sh` on an H200
 * under MPS: each function beside what the request-level simulator and the planner's tail model predict for
 * the same gpu-lets at the same rates. Writes `bench/results/gpu_replay.md`.
 */
import { loadProfile } from "../src/planner/profiles.ts";
import { DEFAULT_TAIL, missShares } from "../src/planner/tail.ts";
import { LatencyTable, queueClass } from "../src/planner/sizing.ts";
import { slowdownIn } from "../src/planner/validate.ts";
import { loadReplays, type Replay, replayName } from "../src/sim/calibration.ts";
import { jobAsPlanGpu } from "../src/sim/plan_replay.ts";
import { type FunctionReplay, replayGpu } from "../src/sim/request_sim.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";

const { latency, interference } = await loadProfile(`${PROJECT_ROOT}/profiles`, "h200");
if (!interference) throw new Error("profiles/h200-pairs.csv is missing");
const table = new LatencyTable(latency);
const pct = (x: number) => (100 * x).toFixed(2);

/** One replay with the simulator's and the tail model's view of each function. */
interface Compared {
  replay: Replay;
  sim: FunctionReplay[];
  modelled: Map<string, number>;
}

function compare(replay: Replay): Compared {
  const { plan, scale } = replay;
  const sim = replayGpu(plan.gpulets, latency, interference!, { seconds: 20, seed: 1, rateScale: scale });
  // The tail model sees each gpu-let with the slowdown its neighbours cause (as the planner sized it).
  const { gpu, models } = jobAsPlanGpu(plan.gpulets, table, scale);
  const modelled = new Map<string, number>();
  plan.gpulets.forEach((g, gi) => {
    const classes = g.functions.map((f, fi) => {
      const alpha = slowdownIn(gpu, gpu.gpulets[gi], f.model, f.batch, models, interference!, table);
      return queueClass(table, f, g.part, alpha, gpu.gpulets[gi].functions[fi].rate, f.batch);
    });
    missShares(classes, DEFAULT_TAIL).forEach((m, i) => modelled.set(g.functions[i].name, 1 - m));
  });
  return { replay, sim, modelled };
}

const HEADER = [
  "| job | × planned rate | function | part | batch | rate/s | SLO ms | real n | real p99 ms | real within % | sim p99 ms | sim within % | model within % |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];

function detail(rows: Compared[]): string[] {
  const out = [...HEADER];
  for (const { replay: { run, scale }, sim, modelled } of rows) {
    const { base } = replayName(run.job);
    for (const f of run.functions) {
      const s = sim.find((x) => x.name === f.name)!;
      out.push(
        `| ${base} | ${scale} | ${f.name} | ${f.part} | ${f.batch} | ${f.rate.toFixed(0)} | ${f.sloMs} | ${f.n} | ${
          f.p99.toFixed(2)
        } | ${pct(f.within)} | ${s.p99Ms.toFixed(2)} | ${pct(s.within)} | ${pct(modelled.get(f.name) ?? NaN)} |`,
      );
    }
  }
  return out;
}

/** Functions whose simulated share within SLO is within 10 points of the real one. */
function near(rows: Compared[]): { near: number; all: number } {
  let n = 0, all = 0;
  for (const { replay: { run }, sim } of rows) {
    for (const f of run.functions) {
      all++;
      if (Math.abs(sim.find((x) => x.name === f.name)!.within - f.within) <= 0.1) n++;
    }
  }
  return { near: n, all };
}

/** One round of the issue-21 verification: worst function per mix and multiple of its claimed peak, then every function. */
function round(rows: Compared[], columns: { frac: number; scale: number }[]): string[] {
  const mixes = [...new Set(rows.map((c) => c.replay.run.job.split("__")[0]))];
  const cell = (mix: string, { frac, scale }: { frac: number; scale: number }) => {
    const c = rows.find((x) =>
      replayName(x.replay.run.job).base === `${mix}__gpulet_f${frac}` && x.replay.scale === scale
    );
    if (!c) return "–";
    const worst = c.replay.run.functions.reduce((w, f) => (f.within < w.within ? f : w));
    const simWorst = Math.min(...c.sim.map((s) => s.within));
    return `${pct(worst.within)} (${worst.name}) · sim ${pct(simWorst)}`;
  };
  const peakOf = (mix: string) => rows.find((x) => x.replay.run.job.startsWith(`${mix}__`))?.replay.plan.peak ?? 0;
  const label = ({ frac, scale }: { frac: number; scale: number }) =>
    scale === 1 ? `${frac}×` : `${frac}× plan at ${scale}× its rates`;
  const { near: n, all } = near(rows);
  return [
    `| mix | claimed peak req/s | ${columns.map(label).join(" | ")} |`,
    `|---|---|${columns.map(() => "---|").join("")}`,
    ...mixes.map((m) => `| ${m} | ${peakOf(m).toFixed(0)} | ${columns.map((c) => cell(m, c)).join(" | ")} |`),
    "",
    `The simulator's share within SLO is within 10 points of the GPU's for ${n} of ${all} functions.`,
    "",
    ...detail(rows),
  ];
}

// Issue 21: every shipped one-GPU mix, the three mixes of the fidelity runs and two random ones: the plans of the
// batch chain at 0.9× (and three at 1.0×), the earlier plans of the full-batch bound at 0.5×, 0.9× and 1.0×, twice,
// the second time also their 1.0× plans at 1.2× and 1.4× their rates.
const tail5 = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay_tail5`)).map(compare);
const tail4 = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay_tail4`)).map(compare);
const tail3 = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay_tail3`)).map(compare);
const tail2b = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay_tail2b`)).map(compare);
const tail2 = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay_tail2`)).map(compare);
const plain = [0.5, 0.9, 1].map((frac) => ({ frac, scale: 1 }));
const lines = [
  "# Tail-aware plans on a real H200 (MPS, Poisson arrivals)",
  "",
  "Each round: for each mix, the gpulet plan for one H200 at a fraction of the peak that `plan --peak --gpus 1`",
  "claims (p99 sizing under Poisson arrivals), 15 s per job, jobs from `deno run -A bench/gpu_jobs.ts DIR`, run on",
  "the device with `bash bench/gpu_replay_batch.sh TAG JOB…` beside `../shared/tools/gpu_replay/{replay.sh,plan_exec.py}`",
  "(28–39 s per job). The mixes: the shipped one-GPU workloads (`resource/workloads/`: scen1 and all8 need more",
  "than one H200 at p99), the three mixes of the H200 fidelity runs and two random mixes of the zoo models",
  "(`resource/fidelity/h200/workloads/`). Beside each: the request-level simulator's worst function for the same",
  "plan, with today's models (so the older rounds' simulated columns are today's predictions, not those of their time).",
  "",
  "## Round 5: each batch its own service factor in the chain, compacted layouts",
  "",
  "Jobs in `gpu_replay_tail5/` (`deno run -A bench/gpu_jobs.ts`): the chain draws a fresh service factor for every",
  "batch after the one a request lands in (it held one factor for the whole stay, and overstated the p99 of",
  "batching gpu-lets by about 14 % beyond the simulator's), the residuals refitted with round 4, and the gpulet",
  "engine compacting its best layout. Claimed peaks rose 7–56 % over round 4 (hw1-vision 638 → 767,",
  "hw2-nlp 1,005 → 1,280, hw4-shared 1,014 → 1,579; rand2 1,771 → 1,756). Run in two calls: every mix at 0.9× and",
  "six at 1.0× (16 jobs), then the other four at 1.0×. The 0.5× jobs were not run (the session's device time).",
  "",
  ...round(tail5, [{ frac: 0.9, scale: 1 }, { frac: 1, scale: 1 }]),
  "",
  "## Round 4: the chain with the residuals of several neighbours (`colocated.ts`)",
  "",
  "Jobs in `gpu_replay_tail4/` (`deno run -A bench/gpu_jobs.ts`, today's planner: batch chain, demand-based pairs",
  "and the per-model residuals of `profiles/h200-colocated.csv`); run in two calls: every mix at 0.9× and 1.0×",
  "(20 jobs), then the 1.0× plans of six mixes with `RATE_SCALE=1.2`. The 0.5× jobs were not run: every earlier",
  "round held ≥ 99.9 % there, and the device time went to 1.2× instead.",
  "",
  ...round(tail4, [{ frac: 0.9, scale: 1 }, { frac: 1, scale: 1 }, { frac: 1, scale: 1.2 }]),
  "",
  "## Round 3: one function's queue solved as a chain (`batch_chain.ts`)",
  "",
  "Jobs in `gpu_replay_tail3/` (made before the residuals of `profiles/h200-colocated.csv`); run: every mix at 0.9×,",
  "and hw1-vision, hw2-nlp, hw4-shared at 1.0× (13 jobs, one call: the session's device time ran out for the rest).",
  "Two functions fell below 99 %: densenet161 at 20 % b3 (hw1-vision, 96.0 %) and at 50 % b3 (scen4, 98.1 %), whose",
  "full batch next to its neighbours ran 41 % and 29 % over the prediction of the pairs. That error is what",
  "`bench/colocated.ts` now fits (`bench/results/colocated.md`); round 4 replays the plans made with it.",
  "",
  ...round(tail3, plain),
  "",
  "## Round 2b: the round-2 plans again, and their 1.0× plans at 1.2× and 1.4× their rates",
  "",
  "The jobs of `gpu_replay_tail2/` run again (two calls of 15 jobs), then the 1.0× plans of six mixes with",
  "`RATE_SCALE=1.2` and of three with `RATE_SCALE=1.4` (one call). Raw results: `gpu_replay_tail2b/`.",
  "",
  ...round(tail2b, [...plain, { frac: 1, scale: 1.2 }, { frac: 1, scale: 1.4 }]),
  "",
  "## Round 2: plans with the demand-based interference model, the full-batch tail bound",
  "",
  "Jobs: `deno run -A bench/gpu_jobs.ts bench/results/gpu_replay_tail2` at the time, run in two calls of 14 and",
  "16 jobs. Raw results: `gpu_replay_tail2/`.",
  "",
  ...round(tail2, plain),
  "",
  "## The first tail-aware plans (issue 19)",
  "",
  "Jobs: `python3 ../shared/tools/gpu_replay/make_jobs.py profiles/h200.csv profiles/h200-pairs.csv gpujobs 0.9 30",
  "resource/workloads/scen2.json resource/workloads/game.json` (each policy's plan for one GPU at 0.9× the peak",
  "that `plan --peak --gpus 1` claimed then, with the interference model of that time, p99 sizing, 30 s per job);",
  "run on the device with `bash replay.sh JOB…` and again with `RATE_SCALE=1.5` and `RATE_SCALE=3` (1.35× and",
  "2.7× the claimed peak). Then the same for scen3, scen4 and scen5 (gpulet only), with `RATE_SCALE=2` (1.8×).",
  "Raw results: `gpu_replay/`. Beside each function: today's request-level simulator (20 s, seed 1) and tail model.",
  "",
];
const first = (await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay`)).map(compare);
lines.push(...detail(first));
lines.push(
  "",
  "At 0.9× the claimed peak every function of the six plans kept ≥ 99.9 % of its requests within SLO on the GPU",
  "(scen2, game and scen2-timeshare: every request), and still at 1.35× (three plans) and 1.8× (three more, ≥ 98.3 %);",
  "at 2.7× scen2's gpulet plan drops to 98.1 % overall: those claims were conservative, mostly because the",
  "interference model then assumed every neighbour always busy.",
  "",
);
await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/gpu_replay.md`, lines.join("\n"));
console.log(lines.slice(0, 40).join("\n"));
