/**
 * The request-level simulator against measured replays of plans on a real GPU (pure): for each replay, the
 * plan's gpu-lets are simulated at the replay's rates and each function's simulated share within SLO is set
 * beside the measured one. The data: `resource/fidelity/h200/` (a copy of `../shared/data/h200/fidelity/`:
 * `turn3/exec_*.json` results, `plans/*.json` jobs).
 */
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import { replayGpu, type ReplayGpulet } from "./request_sim.ts";

/** One replay's measured result (`plan_exec.py`'s output). */
export interface MeasuredRun {
  job: string;
  functions: { name: string; part: number; batch: number; within: number; p99: number; busy: number }[];
}

/** A plan job (`make_jobs.py`'s output): its gpu-lets and the fraction of the claimed peak it ran at. */
export interface PlanJob {
  frac?: number;
  gpulets: ReplayGpulet[];
}

/** One function of one run, measured and simulated. */
export interface CalibrationRow {
  job: string;
  load: number;
  gpulet: string;
  measured: { within: number; p99Ms: number; busy: number };
  simulated: { within: number; p99Ms: number; busy: number };
  /** Within 10 points of the measured share within SLO. */
  near: boolean;
}

/** Summary over the runs at ≤ 0.85× their claimed peak. */
export interface Calibration {
  rows: CalibrationRow[];
  runs: number;
  /** Runs with ≥ 3 of 4 gpu-lets near. */
  runsOk: number;
  gpulets: number;
  near: number;
}

/** Simulates each run's plan at its rates (15 s, seed 1) and compares. `plans` by job base name. */
export function calibrate(
  runs: readonly MeasuredRun[],
  plans: ReadonlyMap<string, PlanJob>,
  latency: LatencyModel,
  interference: InterferenceModel | undefined,
): Calibration {
  const out: Calibration = { rows: [], runs: 0, runsOk: 0, gpulets: 0, near: 0 };
  for (const run of runs) {
    const [, base, x] = run.job.match(/^(.*?)(?:_x([0-9.]+))?$/)!;
    const plan = plans.get(base);
    if (!plan) throw new Error(`no plan ${base} for the replay ${run.job}`);
    const scale = x ? Number(x) : 1;
    const load = (plan.frac ?? 1) * scale;
    const sim = replayGpu(plan.gpulets, latency, interference, { seconds: 15, seed: 1, rateScale: scale });
    let ok = 0;
    for (const m of run.functions) {
      const s = sim.find((r) => r.name === m.name && r.part === m.part);
      if (!s) throw new Error(`${run.job}: ${m.name}@${m.part} % is not in its plan`);
      const near = Math.abs(s.within - m.within) <= 0.1;
      if (near) ok++;
      out.rows.push({
        job: run.job,
        load,
        gpulet: `${m.name}@${m.part} % b${m.batch}`,
        measured: { within: m.within, p99Ms: m.p99, busy: m.busy },
        simulated: { within: s.within, p99Ms: s.p99Ms, busy: s.busy },
        near,
      });
    }
    if (load <= 0.85 + 1e-9) {
      out.runs++;
      out.near += ok;
      out.gpulets += run.functions.length;
      if (ok >= 0.75 * run.functions.length) out.runsOk++;
    }
  }
  return out;
}

/** Reads the replays and plans of a fidelity folder (`<dir>/turn3/exec_*.json`, `<dir>/plans/*.json`). */
export async function loadFidelity(dir: string): Promise<{ runs: MeasuredRun[]; plans: Map<string, PlanJob> }> {
  const read = async (f: string) => JSON.parse(await Deno.readTextFile(f));
  const names = [...Deno.readDirSync(`${dir}/turn3`)].map((e) => e.name).filter((n) => n.endsWith(".json")).sort();
  const runs: MeasuredRun[] = [];
  for (const n of names) runs.push(await read(`${dir}/turn3/${n}`));
  const plans = new Map<string, PlanJob>();
  for (const e of Deno.readDirSync(`${dir}/plans`)) {
    if (e.name.endsWith(".json")) plans.set(e.name.replace(/\.json$/, ""), await read(`${dir}/plans/${e.name}`));
  }
  return { runs, plans };
}
