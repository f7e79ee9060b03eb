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
