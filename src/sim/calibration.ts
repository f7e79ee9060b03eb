/**
 * The request-level simulator against measured replays of plans on a real GPU (pure): for each replay, the
 * plan's gpu-lets are simulated at the replay's rates and each function's simulated share within SLO is set
 * beside the measured one. The data: `resource/fidelity/h200/` (a copy of `../shared/data/h200/fidelity/`:
 * `turn3/exec_*.json` results, `plans/*.json` jobs) and `bench/results/gpu_replay/` (results beside jobs).
 */
import type { InterferenceModel, NeighbourLoad } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";
import { ReplayJob } from "./plan_replay.ts";
import { type FunctionReplay, replayGpu, type ReplayGpulet } from "./request_sim.ts";

/** One function of a replay, as measured (`plan_exec.py`'s output): the simulator's fields, its p99 by another name. */
export interface MeasuredFunction
  extends Pick<FunctionReplay, "name" | "model" | "part" | "batch" | "rate" | "sloMs" | "n" | "within" | "busy"> {
  p99: number;
  /** Latency of a full batch next to the real neighbours (ms); absent in older results. */
  svc_full_ms?: number;
}

/** One replay's measured result. */
export interface MeasuredRun {
  job: string;
  /** Every batch was padded to the plan's batch (a different regime). */
  pad_full?: boolean;
  functions: MeasuredFunction[];
}

/** A plan job (`make_jobs.py`'s output): its gpu-lets and the fraction of the claimed peak it ran at. */
export interface PlanJob {
  frac?: number;
  /** The aggregate rate `plan --peak` claimed for the plan's workload (req/s), where the job says. */
  peak?: number;
  gpulets: ReplayGpulet[];
}

/** One replay: what was measured, the job it ran and the multiple of the job's rates it ran at. */
export interface Replay {
  run: MeasuredRun;
  plan: PlanJob;
  scale: number;
}

/** A replay's job and rate multiple, from its name: `<job>`, or `<job>_x<scale>` (`RATE_SCALE`). */
export function replayName(job: string): { base: string; scale: number } {
  const [, base, x] = job.match(/^(.*?)(?:_x([0-9.]+))?$/)!;
  return { base, scale: x ? Number(x) : 1 };
}

/** One replayed gpu-let with a measured full-batch latency, and its neighbours at their measured busy shares. */
export interface MeasuredGpulet {
  replay: Replay;
  /** Its index in the replay's job. */
  index: number;
  fn: MeasuredFunction & { svc_full_ms: number };
  neighbours: NeighbourLoad[];
}

/**
 * Every gpu-let of `replays` whose full-batch latency was measured, beside the neighbours it had (runs that
 * padded every batch left out: a different regime).
 */
export function measuredGpulets(replays: readonly Replay[]): MeasuredGpulet[] {
  const out: MeasuredGpulet[] = [];
  for (const replay of replays) {
    const { run, plan } = replay;
    if (run.pad_full) continue;
    const busyOf = (part: number, name: string) =>
      run.functions.find((x) => x.part === part && x.name === name)?.busy ?? 0;
    for (const fn of run.functions) {
      const index = plan.gpulets.findIndex((g) => g.part === fn.part && g.functions.some((x) => x.name === fn.name));
      if (index < 0 || !fn.svc_full_ms) continue;
      const neighbours = plan.gpulets.filter((_, j) => j !== index).map((g) => ({
        part: g.part,
        functions: g.functions.map((o) => ({ model: o.model, batch: o.batch, busy: busyOf(g.part, o.name) })),
      }));
      out.push({ replay, index, fn: { ...fn, svc_full_ms: fn.svc_full_ms }, neighbours });
    }
  }
  return out;
}

/** The replays in `runsDir` (`exec_*.json`), each with its job from `jobsDir` (`<job>.json`), by name. */
export async function loadReplays(runsDir: string, jobsDir = runsDir): Promise<Replay[]> {
  const read = async (f: string) => JSON.parse(await Deno.readTextFile(f));
  const names = [...Deno.readDirSync(runsDir)].map((e) => e.name).filter((n) => /^exec_.*\.json$/.test(n)).sort();
  const out: Replay[] = [];
  for (const name of names) {
    const run: MeasuredRun = await read(`${runsDir}/${name}`);
    const { base, scale } = replayName(run.job);
    const job = await read(`${jobsDir}/${base}.json`);
    out.push({ run, plan: { frac: job.frac, peak: job.peak, gpulets: ReplayJob.parse(job).gpulets }, scale });
  }
  return out;
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

/** Simulates each replay's plan at its rates (15 s, seed 1) and compares. */
export function calibrate(
  replays: readonly Replay[],
  latency: LatencyModel,
  interference: InterferenceModel | undefined,
): Calibration {
  const out: Calibration = { rows: [], runs: 0, runsOk: 0, gpulets: 0, near: 0 };
  for (const { run, plan, scale } of replays) {
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
