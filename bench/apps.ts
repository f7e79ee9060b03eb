/**
 * Applications' SLO split (issue 22, planning part): the seed's `traffic` and `game` on 8 H100s (profile
 * SLOs = the paper's × 0.06, as resource/workloads/game.json; ssd served by mobilenet_v2, two crops per
 * frame), planned with each level's budget chosen by `splitAppSlo` and with the even split, at the same app
 * rate: GPUs and % of the GPUs each needs.
 */
import { type AppGraph, evenSplit, splitAppSlo, stageFunctions } from "../src/planner/app_split.ts";
import { loadProfile } from "../src/planner/profiles.ts";
import { planWithEngine } from "../src/planner/planner.ts";
import { totalPart } from "../src/planner/plan.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { GAME, TRAFFIC } from "../src/planner/seed_apps.ts";
import { appPeakScale, planWithApps, workloadApps } from "../src/planner/app_demand.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadInterference } from "../src/planner/profiles.ts";
import type { Policy } from "../src/planner/plan.ts";
import { DEFAULT_OPTIONS } from "../src/planner/planner.ts";
import { parseWorkload, plannedFunctions } from "../src/planner/workload.ts";
import { replayAppPlan } from "../src/sim/app_replay.ts";

/** The seed's apps and the rates they are planned at. */
export const SEED_APPS: { app: AppGraph; rates: number[] }[] = [
  { app: TRAFFIC, rates: [500, 1000, 2000] },
  { app: GAME, rates: [1000, 2000] },
];

export interface AppSplitRow {
  app: string;
  rate: number;
  budgetsMs: number[];
  split: { gpus: number; part: number; feasible: boolean };
  even: { gpus: number; part: number; feasible: boolean };
  planMs: number;
}

/** Plans every app at every rate both ways. */
export async function measureApps(progress: (line: string) => void): Promise<AppSplitRow[]> {
  const { latency, interference } = await loadProfile(`${PROJECT_ROOT}/profiles`, "h100");
  const problem = { device: "h100", gpus: 8, latency, interference };
  const rows: AppSplitRow[] = [];
  for (const { app, rates } of SEED_APPS) {
    for (const rate of rates) {
      progress(`${app.name} at ${rate} req/s: splitting ${app.sloMs.toFixed(2)} ms over ${app.levels.length} levels`);
      const t0 = performance.now();
      const split = splitAppSlo(problem, app, rate);
      const planMs = performance.now() - t0;
      const even = planWithEngine({ ...problem, functions: stageFunctions(app, evenSplit(app), rate) }, "gpulet");
      const of = (p: typeof even) => ({ gpus: p.gpusUsed, part: totalPart(p), feasible: p.feasible });
      rows.push({ app: app.name, rate, budgetsMs: split.budgetsMs, split: of(split.plan), even: of(even), planMs });
    }
  }
  return rows;
}

/** The rows as Markdown. */
export function appsMarkdown(rows: AppSplitRow[], command: string): string {
  const f = (x: number, d = 0) => x.toFixed(d);
  return [
    "# Applications: the planner's SLO split against the even split (8 H100s)",
    "",
    `Command: \`${command}\` (${new Date().toISOString()}). Budgets per level (ms) in tenths of the app's SLO;`,
    "GPUs used and % of the GPUs in use for the same app rate; ratio = split % / even %.",
    "",
    "| app | rate (req/s) | budgets (ms) | split: GPUs, % | even: GPUs, % | ratio | search (ms) |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.app} | ${r.rate} | ${r.budgetsMs.map((b) => f(b, 2)).join(" + ")} | ${r.split.gpus}, ${f(r.split.part)}${
        r.split.feasible ? "" : " (short)"
      } | ${r.even.gpus}, ${f(r.even.part)}${r.even.feasible ? "" : " (short)"} | **${
        f(r.split.part / r.even.part, 2)
      }** | ${f(r.planMs)} |`
    ),
    "",
  ].join("\n");
}

/** The app workloads of `resource/workloads/` (as `functions/game` and `functions/traffic` deploy them). */
export const APP_WORKLOADS = ["game-app", "traffic-app"];
/** GPUs the app peaks are searched on (as the planner bench's other workloads). */
const APP_GPUS = 4;
/** The share of the app peak replayed request by request, and for how long (virtual seconds). */
const REPLAY_SHARE = 0.8;
const REPLAY_SECONDS = 30;

/** One app workload under one policy: its peak, and its plan at 0.8× the peak replayed request by request. */
export interface AppPeakRow {
  workload: string;
  app: string;
  policy: Policy;
  /** App requests/s at the peak (every app of the workload × the same scale). */
  peakRate: number;
  budgetsAtPeakMs: number[];
  searchMs: number;
  replay: {
    rate: number;
    gpusUsed: number;
    part: number;
    budgetsMs: number[];
    within: number;
    p99Ms: number;
    sloMs: number;
    stages: { name: string; within: number; p99Ms: number; sloMs: number }[];
  };
}

/**
 * The app peak of every app workload, gpulet against timeshare (both with the planner's SLO split, p99
 * Poisson sizing), on 4 H100s; then each policy's plan for 0.8× its peak (split again for that rate), replayed
 * request by request with Poisson app arrivals (`replayAppPlan`): app attainment end to end beside the stages'.
 */
export async function measureAppPeaks(progress: (line: string) => void): Promise<AppPeakRow[]> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
  const interference = await loadInterference(latency, `${PROJECT_ROOT}/profiles/h100-pairs.csv`);
  const rows: AppPeakRow[] = [];
  for (const name of APP_WORKLOADS) {
    const file = `${PROJECT_ROOT}/resource/workloads/${name}.json`;
    const w = parseWorkload(await Deno.readTextFile(file), file);
    const functions = plannedFunctions(w, latency, file);
    const apps = workloadApps(w, functions, file);
    const problem = { device: w.device, gpus: APP_GPUS, functions, latency, interference };
    for (const policy of ["gpulet", "timeshare"] as const) {
      progress(`apps: ${name}: app peak of ${policy} on ${APP_GPUS} GPUs`);
      const t0 = performance.now();
      const scale = appPeakScale(problem, apps, policy);
      const searchMs = performance.now() - t0;
      const atPeak = planWithApps(problem, apps, policy, DEFAULT_OPTIONS, scale);
      const at = planWithApps(problem, apps, policy, DEFAULT_OPTIONS, REPLAY_SHARE * scale);
      progress(`apps: ${name}: ${policy} at ${REPLAY_SHARE}× its peak, request by request`);
      const replay = replayAppPlan(at.plan, functions, apps, latency, interference, {
        seconds: REPLAY_SECONDS,
        seed: 1,
      })!;
      const planned = new Map(at.functions.map((f) => [f.name, f]));
      const app = replay.apps[0];
      rows.push({
        workload: name,
        app: apps[0].name,
        policy,
        peakRate: apps[0].rate * scale,
        budgetsAtPeakMs: atPeak.budgets[0].budgetsMs,
        searchMs,
        replay: {
          rate: at.budgets[0].rate,
          gpusUsed: at.plan.gpusUsed,
          part: totalPart(at.plan),
          budgetsMs: at.budgets[0].budgetsMs,
          within: app.within,
          p99Ms: app.p99Ms,
          sloMs: app.sloMs,
          stages: replay.functions.filter((f) => (planned.get(f.name)?.rate ?? 0) > 0).map((f) => ({
            name: f.name,
            within: f.within,
            p99Ms: f.p99Ms,
            sloMs: f.sloMs,
          })),
        },
      });
    }
  }
  return rows;
}

/** The app peaks as Markdown (a section of the planner bench). */
export function appPeaksMarkdown(rows: readonly AppPeakRow[]): string {
  const f = (x: number, d = 0) => x.toFixed(d);
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  const peak = (w: string, p: string) => rows.find((r) => r.workload === w && r.policy === p)?.peakRate ?? NaN;
  return [
    `## Applications: app peak on ${APP_GPUS} H100s, gpulet vs timeshare (both with the planner's SLO split)`,
    "",
    "Every app request's stages planned for their level's budget (split by the planner at each rate tried; p99",
    "sizing under Poisson arrivals, a stage's grouped calls at the CV of their dispersion). Then each policy's",
    `plan for ${REPLAY_SHARE}× its peak, replayed request by request for ${REPLAY_SECONDS} virtual s (Poisson app`,
    "arrivals; each level's calls sent when the level before answers; `src/sim/app_replay.ts`): the share of app",
    "requests answered end to end within the app's SLO, beside each stage function's (target ≥ 99 %).",
    "",
    "| app | policy | peak (app req/s) | budgets at peak (ms) | search (ms) | at 0.8×: req/s | GPUs, % | budgets (ms) | app within SLO | app p99 / SLO (ms) | stages within (p99 ms) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.app} | ${r.policy} | ${f(r.peakRate)} | ${r.budgetsAtPeakMs.map((b) => f(b, 2)).join(" + ")} | ${
        f(r.searchMs)
      } | ${f(r.replay.rate)} | ${r.replay.gpusUsed}, ${f(r.replay.part)} | ${
        r.replay.budgetsMs.map((b) => f(b, 2)).join(" + ")
      } | **${pct(r.replay.within)}** | ${f(r.replay.p99Ms, 2)} / ${f(r.replay.sloMs, 2)} | ${
        r.replay.stages.map((s) => `${s.name} ${pct(s.within)} (${f(s.p99Ms, 2)})`).join("; ")
      } |`
    ),
    "",
    ...[...new Set(rows.map((r) => r.workload))].map((w) =>
      `${w}: gpulet / timeshare app peak **${f(peak(w, "gpulet") / peak(w, "timeshare"), 2)}**.`
    ),
    "",
  ].join("\n");
}
