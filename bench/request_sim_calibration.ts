/**
 * `deno run -A bench/request_sim_calibration.ts`: the request-level simulator (`src/sim/request_sim.ts`)
 * against the H200 replays of gpulet's own plans (`resource/fidelity/h200/`, a copy of
 * `../shared/data/h200/fidelity/`): per run and function, the measured and simulated share within the SLO,
 * p99 and busy time; then, for the runs at ≤ 0.85× their peak, how many have ≥ 3 of 4 gpu-lets within 10
 * points. Writes `bench/results/request_sim_calibration.md`.
 */
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { calibrate, loadReplays } from "../src/sim/calibration.ts";
import { DEFAULT_SPREAD } from "../src/sim/request_sim.ts";
import { loadProfile } from "../src/planner/profiles.ts";

const { latency, interference } = await loadProfile(`${PROJECT_ROOT}/profiles`, "h200");
const data = `${PROJECT_ROOT}/resource/fidelity/h200`;
const c = calibrate(await loadReplays(`${data}/turn3`, `${data}/plans`), latency, interference);
const f1 = (x: number) => x.toFixed(1);
const command = `deno run -A bench/request_sim_calibration.ts`;
const md = [
  `# Request-level simulator against the H200 replays`,
  ``,
  `Command: \`${command}\` (${
    new Date().toISOString()
  }). Spread ${DEFAULT_SPREAD}, each running neighbour's full pairwise slowdown, Poisson arrivals, 15 s per run, seed 1.`,
  ``,
  `Runs at ≤ 0.85× their peak with ≥ 3 of 4 gpu-lets within 10 points of the measured share within SLO: **${c.runsOk} of ${c.runs}** (goal: all); gpu-lets within 10 points: ${c.near} of ${c.gpulets}.`,
  ``,
  `| run | load (× peak) | gpu-let | within SLO measured % | simulated % | p99 ms measured / simulated | busy measured / simulated |`,
  `|---|---|---|---|---|---|---|`,
  ...c.rows.map((r) =>
    `| ${r.job} | ${r.load.toFixed(2)} | ${r.gpulet} | ${f1(100 * r.measured.within)} | ${
      f1(100 * r.simulated.within)
    }${r.near ? "" : " ✗"} | ${f1(r.measured.p99Ms)} / ${f1(r.simulated.p99Ms)} | ${r.measured.busy.toFixed(2)} / ${
      r.simulated.busy.toFixed(2)
    } |`
  ),
  ``,
].join("\n");
await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/request_sim_calibration.md`, md);
console.log(md);
