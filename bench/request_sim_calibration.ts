/**
 * `deno run -A bench/request_sim_calibration.ts [SHARED_DIR]`: the request-level simulator (`src/sim/request_sim.ts`)
 * against the H200 replays of gpulet's own plans (`<shared>/data/h200/fidelity/turn3/`, plans in `../plans/`):
 * per run and function, the measured and simulated share within the SLO, p99 and busy time; then, for the
 * runs at ≤ 0.85× their peak, how many have ≥ 3 of 4 gpu-lets within 10 points. Writes
 * `bench/results/request_sim_calibration.md`. Needs the shared data beside the checkout (`../shared`).
 */
import { InterferenceModel } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, observations } from "../src/planner/pairs.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { DEFAULT_INTERFERENCE_SCALE, DEFAULT_SPREAD, replayGpu, type ReplayGpulet } from "../src/sim/request_sim.ts";

interface Measured {
  name: string;
  part: number;
  batch: number;
  within: number;
  p99: number;
  busy: number;
}

const shared = Deno.args[0] ?? `${PROJECT_ROOT}/../shared`;
const data = `${shared}/data/h200`;
try {
  await Deno.stat(`${data}/fidelity/turn3`);
} catch {
  console.error(`no H200 replays at ${data}/fidelity/turn3 (give the shared folder as the argument)`);
  Deno.exit(2);
}
const latency = await loadLatencyModel(`${data}/latency.csv`);
const interference = InterferenceModel.fit(latency, observations(await loadPairs(`${data}/pairs.csv`)));
const f1 = (x: number) => x.toFixed(1);
const rows: string[] = [];
let runs = 0, runsOk = 0, close = 0, gpulets = 0;
const files = [...Deno.readDirSync(`${data}/fidelity/turn3`)].map((e) => e.name).sort();
for (const file of files) {
  const exec = JSON.parse(await Deno.readTextFile(`${data}/fidelity/turn3/${file}`));
  const [, base, x] = (exec.job as string).match(/^(.*?)(?:_x([0-9.]+))?$/)!;
  const plan = JSON.parse(await Deno.readTextFile(`${data}/fidelity/plans/${base}.json`)) as {
    frac?: number;
    gpulets: ReplayGpulet[];
  };
  const scale = x ? Number(x) : 1;
  const load = (plan.frac ?? 1) * scale;
  const sim = replayGpu(plan.gpulets, latency, interference, { seconds: 15, seed: 1, rateScale: scale });
  let ok = 0;
  for (const m of exec.functions as Measured[]) {
    const s = sim.find((r) => r.name === m.name && r.part === m.part)!;
    const near = Math.abs(s.within - m.within) <= 0.1;
    if (near) ok++;
    rows.push(
      `| ${exec.job} | ${load.toFixed(2)} | ${m.name}@${m.part} % b${m.batch} | ${f1(100 * m.within)} | ${
        f1(100 * s.within)
      }${near ? "" : " ✗"} | ${f1(m.p99)} / ${f1(s.p99Ms)} | ${m.busy.toFixed(2)} / ${s.busy.toFixed(2)} |`,
    );
  }
  if (load <= 0.85 + 1e-9) {
    runs++;
    close += ok;
    gpulets += exec.functions.length;
    if (ok >= 0.75 * exec.functions.length) runsOk++;
  }
}
const command = `deno run -A bench/request_sim_calibration.ts`;
const md = [
  `# Request-level simulator against the H200 replays`,
  ``,
  `Command: \`${command}\` (${
    new Date().toISOString()
  }). Spread ${DEFAULT_SPREAD}, interference scale ${DEFAULT_INTERFERENCE_SCALE}, Poisson arrivals, 15 s per run, seed 1.`,
  ``,
  `Runs at ≤ 0.85× their peak with ≥ 3 of 4 gpu-lets within 10 points of the measured share within SLO: **${runsOk} of ${runs}** (goal: all); gpu-lets within 10 points: ${close} of ${gpulets}.`,
  ``,
  `| run | load (× peak) | gpu-let | within SLO measured % | simulated % | p99 ms measured / simulated | busy measured / simulated |`,
  `|---|---|---|---|---|---|---|`,
  ...rows,
  ``,
].join("\n");
await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/request_sim_calibration.md`, md);
console.log(md);
