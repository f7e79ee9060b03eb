/**
 * `deno task simulate --profile P.csv --pairs P-pairs.csv --workload W.json --schedule S.csv
 * [--policy gpulet] [--gpus N] [--seconds N] [--seed N] [--warmup-ms N] [--requests] [--json]`: the planner
 * and the autoscaler in virtual time over a rate schedule (see `src/loadgen/schedule.ts`). The workload gives
 * the functions (model, SLO); the schedule gives their rates over time. Prints a summary (or the JSON
 * report). `--requests` serves every request with the request-level model instead of the fluid one.
 *
 * `deno task simulate --profile P.csv --pairs P-pairs.csv --plan PLAN.json [--workload W.json]
 * [--rate-scale K] [--seconds S] [--cv C] [--seed N] [--json]`: replays one fixed plan request by request
 * (`src/sim/request_sim.ts`), as the GPU replay harness runs it on a real GPU: per function n, p50, p99 and
 * the share within SLO.
 */
import { parseArgs } from "./args.ts";
import { CsvError } from "../planner/csv.ts";
import { loadInterference } from "../planner/profiles.ts";
import { loadLatencyModel, ProfileError } from "../planner/latency_model.ts";
import { parseJsonText, parseWorkload, plannedFunctions, WorkloadError } from "../planner/workload.ts";
import { Schedule } from "../loadgen/schedule.ts";
import { DEFAULT_SIM_OPTIONS, type SimReport, simulate } from "../sim/simulator.ts";
import { formatReplay, replayGpus } from "../sim/plan_replay.ts";
import { replayGpu } from "../sim/request_sim.ts";
import { workloadApps } from "../planner/app_demand.ts";
import { Plan } from "../planner/plan.ts";
import { describeZodError } from "../functions/manifest.ts";
import { formatAppReplay, replayAppPlan } from "../sim/app_replay.ts";

const USAGE = "usage: deno task simulate --profile P.csv --pairs P-pairs.csv --workload W.json --schedule S.csv\n" +
  "       [--policy gpulet|gpulet-noint|timeshare|greedy] [--gpus N] [--seconds N] [--seed N] [--warmup-ms N]\n" +
  "       [--requests (request by request: tails count)] [--json]\n" +
  "   or: deno task simulate --profile P.csv --pairs P-pairs.csv --plan PLAN.json [--workload W.json]\n" +
  "       [--rate-scale K] [--seconds S] [--cv C] [--seed N] [--json]";
const SIM_POLICIES = ["gpulet", "gpulet-noint", "timeshare", "greedy"] as const;

/** A readable summary of a simulation. */
export function formatReport(r: SimReport): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  const lines = [
    `${r.policy}: ${r.seconds} s, ${r.arrivals} requests, ${pct(r.attainment)} within SLO ` +
    `(${r.late} late, ${r.shed} shed)`,
    `GPU-seconds ${r.gpuSeconds.toFixed(0)} (best static plan per phase: ${r.bestStaticGpuSeconds.toFixed(0)}, ` +
    `ratio ${(r.gpuSeconds / r.bestStaticGpuSeconds).toFixed(2)}), ${r.replans} re-plans`,
    ...r.recoveries.map((x) =>
      `after the change at ${x.at} s: ${x.seconds === null ? "never back to 99 %" : `99 % again in ${x.seconds} s`}`
    ),
    ...r.changes.map((c) => `  ${c.t.toFixed(1)} s ${c.direction} → ${c.gpus} GPU(s), ${c.changes} gpu-let(s) moved`),
  ];
  return lines.join("\n");
}

function count(name: string, v: string | boolean | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(n >= 0) || !Number.isFinite(n)) throw new WorkloadError(`--${name} must be a number ≥ 0, got ${v}`);
  return n;
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs(
    args,
    [
      "profile",
      "pairs",
      "workload",
      "schedule",
      "policy",
      "gpus",
      "seconds",
      "seed",
      "warmup-ms",
      "plan",
      "rate-scale",
      "cv",
    ],
    ["json", "requests"],
  );
  if (values.plan !== undefined) return await replayPlan(values);
  const policy = (values.policy ?? "gpulet") as typeof SIM_POLICIES[number];
  const [profile, pairs, workloadFile, scheduleFile] = [values.profile, values.pairs, values.workload, values.schedule]
    .map((v) => v as string | undefined);
  if (!profile || !pairs || !workloadFile || !scheduleFile || !SIM_POLICIES.includes(policy)) {
    console.error(USAGE);
    return 2;
  }
  const { latency, interference } = await loadModels(profile, pairs);
  const workload = parseWorkload(await Deno.readTextFile(workloadFile), workloadFile);
  const functions = plannedFunctions(workload, latency, workloadFile).map(({ rate: _rate, ...f }) => f);
  const schedule = Schedule.parse(await Deno.readTextFile(scheduleFile), scheduleFile);
  const unknown = schedule.functions().filter((n) => !functions.some((f) => f.name === n));
  if (unknown.length > 0) throw new WorkloadError(`${scheduleFile}: functions not in the workload: ${unknown}`);
  let shown = 0;
  const report = simulate(
    { device: workload.device, gpus: count("gpus", values.gpus, workload.gpus), latency, interference, policy },
    functions,
    schedule,
    {
      ...DEFAULT_SIM_OPTIONS,
      seed: count("seed", values.seed, DEFAULT_SIM_OPTIONS.seed),
      warmupMs: count("warmup-ms", values["warmup-ms"], DEFAULT_SIM_OPTIONS.warmupMs),
      seconds: values.seconds === undefined ? undefined : count("seconds", values.seconds, 0),
      requests: values.requests === true,
    },
    (f) => {
      const tenth = Math.floor(10 * f);
      if (tenth > shown) Deno.stderr.writeSync(new TextEncoder().encode(`\rsimulating ${(shown = tenth) * 10} %`));
    },
  );
  Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}

/** The latency model of a profile file and the interference model fitted on a pairs file. */
async function loadModels(profile: string, pairs: string) {
  const latency = await loadLatencyModel(profile);
  return { latency, interference: await loadInterference(latency, pairs) };
}

/** `--plan`: one fixed plan, request by request. */
async function replayPlan(values: Record<string, string | boolean | undefined>): Promise<number> {
  const [profile, pairs, planFile] = [values.profile, values.pairs, values.plan].map((v) => v as string | undefined);
  if (!profile || !pairs || !planFile || typeof values.plan !== "string") {
    console.error(USAGE);
    return 2;
  }
  const { latency, interference } = await loadModels(profile, pairs);
  const workloadFile = values.workload as string | undefined;
  const workload = workloadFile ? parseWorkload(await Deno.readTextFile(workloadFile), workloadFile) : undefined;
  const json = parseJsonText(await Deno.readTextFile(planFile), planFile);
  // Checks the file (a plan or a replay job) and that its functions are the workload's.
  const gpus = replayGpus(json, workload, planFile);
  const opts = {
    seconds: count("seconds", values.seconds, 15),
    seed: count("seed", values.seed, 1),
    rateScale: count("rate-scale", values["rate-scale"], 1),
    cv: count("cv", values.cv, 1),
  };
  if (workload?.apps?.length) {
    // Apps: each judged end to end, beside the functions it calls.
    const functions = plannedFunctions(workload, latency, workloadFile);
    const apps = workloadApps(workload, functions, workloadFile);
    const plan = Plan.safeParse(json);
    if (!plan.success) {
      throw new WorkloadError(
        `${planFile}: a workload with apps replays a plan (plan --json), not a replay job: ${
          describeZodError(plan.error)
        }`,
      );
    }
    const result = replayAppPlan(plan.data, functions, apps, latency, interference, opts);
    if (!result) throw new WorkloadError(`${planFile}: the workload has apps; the plan has no split for every one`);
    console.log(values.json ? JSON.stringify({ ...opts, ...result }, null, 2) : formatAppReplay(result));
    return 0;
  }
  const results = gpus.map((g) => replayGpu(g, latency, interference, opts));
  console.log(values.json ? JSON.stringify({ ...opts, gpus: results }, null, 2) : formatReplay(results));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (
      e instanceof CsvError || e instanceof ProfileError || e instanceof WorkloadError ||
      e instanceof Deno.errors.NotFound
    ) {
      console.error(`error: ${(e as Error).message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
