/**
 * Planner benchmark (DESIGN.md benchmark 2): for every workload in `resource/workloads/`, on 4 H100s, the
 * peak aggregate rate of every policy and of the fractional bound; whether each policy's plan at its peak
 * passes the validator with interference; GPUs each policy needs at three fixed rates; and planning time for
 * 20 functions on 8 GPUs; for the app workloads, the app peak (gpulet vs timeshare) and 0.8× of it replayed.
 */
import { InterferenceModel } from "../src/planner/interference.ts";
import { type LatencyModel, loadLatencyModel } from "../src/planner/latency_model.ts";
import { planDemand } from "../src/autoscaler/plan_demand.ts";
import { RemotePlanner } from "../src/autoscaler/remote_planner.ts";
import { loadPairs, observations } from "../src/planner/pairs.ts";
import type { Policy } from "../src/planner/plan.ts";
import { AVERAGES_OPTIONS, DEFAULT_OPTIONS, type PlanProblem } from "../src/planner/planner.ts";
import { LatencyTable, type PlannedFunction, saturated } from "../src/planner/sizing.ts";
import { makePlan, peakFor } from "../src/planner/policies.ts";
import { validatePlan } from "../src/planner/validate.ts";
import { parseWorkload, plannedFunctions, scaled } from "../src/planner/workload.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { type AppPeakRow, appPeaksMarkdown, measureAppPeaks } from "./apps.ts";

const POLICIES: Policy[] = ["bound", "timeshare", "greedy", "gpulet-noint", "gpulet", "ideal"];
/** Policies whose peak plans are checked with interference (noint's are checked to show what it breaks). */
const GPUS = 4;
/** Fixed rates for the GPU-count comparison, as fractions of the bound's peak on 4 GPUs. */
const FIXED = [0.25, 0.5, 0.75];

export interface PlannerWorkloadResult {
  workload: string;
  functions: number;
  baseRate: number;
  peaks: Record<string, { scale: number; aggregateRate: number; valid?: boolean; violations?: number; ms: number }>;
  ratios: { gpuletOverTimeshare: number; gpuletOverBound: number; gpuletOverIdeal: number };
  gpusNeeded: { rate: number; byPolicy: Record<string, number | null> }[];
  /** Peaks of gpulet and timeshare sized on averages only (no tail target). */
  onAverages: { gpulet: number; timeshare: number };
}

/** Why partitioning gains what it gains: throughput per % of a GPU at the model's SLO (all8's SLOs). */
export interface PartitionGain {
  model: string;
  sloMs: number;
  /** req/s per % on a whole GPU. */
  whole: number;
  /** Best req/s per % on a smaller part, alone on the GPU (no interference), and that part. */
  alone: number;
  alonePart: number;
  /** Best req/s per % on a smaller part with a copy of itself in the rest of the GPU (interference). */
  beside: number;
  besidePart: number;
}

export interface PlannerResult {
  partitionGains: PartitionGain[];
  workloads: PlannerWorkloadResult[];
  geoMeanGpuletOverTimeshare: number;
  planningMs20x8: { coldMs: number; feasible: boolean; gpus: number; median: number; max: number };
  /**
   * Longest gap between the serving thread's 1 ms timer ticks during one cold re-plan of the same problem:
   * made in the planner's worker (`RemotePlanner`, as the live controller does) and on the serving thread.
   */
  loopStallMs: { inWorker: number; onThread: number };
  /** The app workloads: app peak of gpulet and timeshare with the SLO split, and 0.8× of it replayed. */
  apps: AppPeakRow[];
}

/** Runs the benchmark. */
export async function measurePlanner(progress: (s: string) => void): Promise<PlannerResult> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
  const interference = InterferenceModel.fit(
    latency,
    observations(await loadPairs(`${PROJECT_ROOT}/profiles/h100-pairs.csv`)),
  );
  const names: string[] = [];
  for await (const e of Deno.readDir(`${PROJECT_ROOT}/resource/workloads`)) {
    if (e.name.endsWith(".json")) names.push(e.name.replace(/\.json$/, ""));
  }
  names.sort();
  const workloads: PlannerWorkloadResult[] = [];
  for (const name of names) {
    const file = `${PROJECT_ROOT}/resource/workloads/${name}.json`;
    const w = parseWorkload(await Deno.readTextFile(file), file);
    if (w.apps?.length) continue; // app workloads: their own section (`measureAppPeaks`)
    const functions = plannedFunctions(w, latency, file);
    const problem: PlanProblem = { device: w.device, gpus: GPUS, functions, latency, interference };
    const peaks: PlannerWorkloadResult["peaks"] = {};
    for (const policy of POLICIES) {
      progress(`planner: ${name}: peak of ${policy}`);
      const t0 = performance.now();
      const peak = peakFor(problem, policy);
      const ms = performance.now() - t0;
      const entry: PlannerWorkloadResult["peaks"][string] = {
        scale: peak.scale,
        aggregateRate: peak.aggregateRate,
        ms,
      };
      if (policy !== "bound" && peak.scale > 0) {
        const at = scaled(functions, peak.scale);
        const plan = makePlan({ ...problem, functions: at }, policy);
        const errors = validatePlan(plan, { functions: at, latency, interference, gpus: GPUS });
        entry.valid = errors.length === 0;
        entry.violations = errors.length;
      }
      peaks[policy] = entry;
    }
    // The same two policies on averages only (the duty-cycle rule without a tail target), for comparison.
    progress(`planner: ${name}: peaks on averages`);
    const onAverages = {
      gpulet: peakFor(problem, "gpulet", AVERAGES_OPTIONS).aggregateRate,
      timeshare: peakFor(problem, "timeshare", AVERAGES_OPTIONS).aggregateRate,
    };
    const boundScale = peaks.bound.scale;
    const gpusNeeded = FIXED.map((fraction) => {
      const at = scaled(functions, boundScale * fraction);
      const byPolicy: Record<string, number | null> = {};
      for (const policy of POLICIES) {
        if (policy === "ideal") continue; // limited to a few GPUs
        const plan = makePlan({ ...problem, gpus: 16, functions: at }, policy);
        byPolicy[policy] = plan.feasible ? plan.gpusUsed : null;
      }
      return { rate: at.reduce((s, f) => s + f.rate, 0), byPolicy };
    });
    const r = (a: string, b: string) => peaks[a].aggregateRate / peaks[b].aggregateRate;
    workloads.push({
      workload: name,
      functions: functions.length,
      baseRate: functions.reduce((s, f) => s + f.rate, 0),
      peaks,
      ratios: {
        gpuletOverTimeshare: r("gpulet", "timeshare"),
        gpuletOverBound: r("gpulet", "bound"),
        gpuletOverIdeal: r("gpulet", "ideal"),
      },
      gpusNeeded,
      onAverages,
    });
  }
  const finite = workloads.map((w) => w.ratios.gpuletOverTimeshare).filter(Number.isFinite);
  const geo = Math.exp(finite.reduce((s, x) => s + Math.log(x), 0) / finite.length);
  progress("planner: planning time, 20 functions on 8 GPUs");
  const all8 = `${PROJECT_ROOT}/resource/workloads/all8.json`;
  const gains = partitionGains(
    latency,
    interference,
    plannedFunctions(parseWorkload(await Deno.readTextFile(all8)), latency),
  );
  return {
    partitionGains: gains,
    workloads,
    geoMeanGpuletOverTimeshare: geo,
    planningMs20x8: await planningTime(interference),
    loopStallMs: await loopStall(interference),
    apps: await measureAppPeaks(progress),
  };
}

/** Throughput per % of a GPU, whole, on the best smaller part alone, and beside a copy of itself. */
function partitionGains(
  latency: PlanProblem["latency"],
  interference: InterferenceModel,
  functions: readonly PlannedFunction[],
): PartitionGain[] {
  const table = new LatencyTable(latency);
  return functions.map((fn) => {
    const parts = latency.parts(fn.model).filter((p) => p < 100);
    const best = (alpha: (p: number) => number) =>
      parts.reduce((b, p) => {
        const r = saturated(table, fn, p, alpha(p)).rate / p;
        return r > b.rate ? { rate: r, part: p } : b;
      }, { rate: 0, part: 0 });
    const alone = best(() => 1);
    const beside = best((p) => interference.slowdownAt(fn.model, p, 8, fn.model, 100 - p, 8));
    return {
      model: fn.model,
      sloMs: fn.sloMs,
      whole: saturated(table, fn, 100, 1).rate / 100,
      alone: alone.rate,
      alonePart: alone.part,
      beside: beside.rate,
      besidePart: beside.part,
    };
  });
}

/** 20 functions: the 8 models with varied rates and SLOs. */
function twentyFunctions(latency: LatencyModel): PlannedFunction[] {
  const models = latency.models();
  const fastest = (m: string) => latency.latency(m, 100, 1);
  return Array.from({ length: 20 }, (_, i) => {
    const model = models[i % models.length];
    return { name: `f${i}`, model, rate: 100 + 60 * i, sloMs: fastest(model) * (4 + (i % 5)), maxBatch: 32 };
  });
}

/**
 * Planning time of `gpulet` for 20 functions (the 8 models with varied rates and SLOs) on 8 GPUs: cold (a
 * freshly loaded profile: no tail answers remembered) and warm (7 re-plans with every rate moved by a few %,
 * as the autoscaler re-plans), the median and the slowest.
 */
async function planningTime(interference: InterferenceModel) {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
  const functions = twentyFunctions(latency);
  // At 0.25× these rates the demand fits 8 GPUs (7 used); a demand that cannot be served in full takes
  // longer (the engine also tries plans for more demand, see planWithEngine).
  const plan = (scale: number) => {
    const t0 = performance.now();
    const p = makePlan(
      { device: "h100", gpus: 8, functions: scaled(functions, scale), latency, interference },
      "gpulet",
      DEFAULT_OPTIONS,
    );
    return { ms: performance.now() - t0, feasible: p.feasible, gpus: p.gpusUsed };
  };
  const cold = plan(0.25);
  const times = Array.from({ length: 7 }, (_, i) => plan(0.25 * (0.91 + 0.03 * i)).ms).sort((a, b) => a - b);
  return { coldMs: cold.ms, feasible: cold.feasible, gpus: cold.gpus, median: times[3], max: times[6] };
}

/**
 * The serving loop while a cold re-plan of the 20-function problem (at 0.25× its rates, 8 GPUs) is made: the
 * longest gap between 1 ms timer ticks, with the plan made in the worker and on this thread. Each side plans
 * on a freshly loaded profile (nothing remembered).
 */
async function loopStall(interference: InterferenceModel): Promise<PlannerResult["loopStallMs"]> {
  const longestGap = async (work: () => Promise<unknown>) => {
    let last = performance.now(), worst = 0;
    const tick = () => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    };
    const timer = setInterval(tick, 1);
    await new Promise((r) => setTimeout(r, 5));
    await work();
    tick();
    clearInterval(timer);
    return worst;
  };
  // A freshly loaded profile per side: nothing remembered.
  const fresh = async () => {
    const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h100.csv`);
    return {
      context: { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const },
      request: { functions: scaled(twentyFunctions(latency), 0.25), compact: false, headroom: 0.1 },
    };
  };
  const remote = await fresh();
  const planner = new RemotePlanner(remote.context);
  const inWorker = await longestGap(() => planner.plan(remote.request));
  planner.close();
  const local = await fresh();
  const onThread = await longestGap(() => Promise.resolve(planDemand(local.context, local.request)));
  return { inWorker, onThread };
}

/** The markdown report. */
export function plannerMarkdown(r: PlannerResult, command: string): string {
  const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "∞");
  const lines = [
    "# Planner: peak aggregate rate on 4 H100s (profiles/h100.csv, interference from profiles/h100-pairs.csv)",
    "",
    "Every policy sizes every gpu-let for p99 latency within each SLO under Poisson arrivals (`src/planner/tail.ts`),",
    "except the last column pair, which repeats gpulet and timeshare with the duty-cycle rule alone (averages).",
    "",
    `Command: \`${command}\` (${new Date().toISOString()}). Peak = largest common multiplier of the workload's`,
    "rates that the policy serves in full (bisection to 0.2 %), × the workload's total rate. ✓ = the plan at the",
    "peak passes the validator with interference; ✗ (n) = n violations once interference is applied.",
    "",
    `| workload | ${
      POLICIES.join(" | ")
    } | gpulet / timeshare | gpulet / bound | gpulet / ideal | gpulet (averages) | timeshare (averages) |`,
    `|---|${POLICIES.map(() => "---").join("|")}|---|---|---|---|---|`,
  ];
  for (const w of r.workloads) {
    const cells = POLICIES.map((p) => {
      const e = w.peaks[p];
      const mark = e.valid === undefined ? "" : e.valid ? " ✓" : ` ✗ (${e.violations})`;
      return `${f(e.aggregateRate)}${mark}`;
    });
    lines.push(
      `| ${w.workload} | ${cells.join(" | ")} | **${f(w.ratios.gpuletOverTimeshare, 2)}** | ${
        f(w.ratios.gpuletOverBound, 2)
      } | ${f(w.ratios.gpuletOverIdeal, 2)} | ${f(w.onAverages.gpulet)} | ${f(w.onAverages.timeshare)} |`,
    );
  }
  lines.push(
    "",
    `Geometric mean of gpulet / timeshare over the workloads where timeshare serves anything: **${
      f(r.geoMeanGpuletOverTimeshare, 2)
    }** (target ≥ 1.5; both tail-aware, p99 under Poisson arrivals).`,
    `Planning time, gpulet (p99 sizing), 20 functions on 8 GPUs (${
      r.planningMs20x8.feasible ? "feasible" : "NOT feasible"
    }, ${r.planningMs20x8.gpus} GPUs): cold ${
      f(r.planningMs20x8.coldMs, 1)
    } ms (fresh profile); re-plans with rates moved by a few %: median ${f(r.planningMs20x8.median, 1)} ms, max ${
      f(r.planningMs20x8.max, 1)
    } ms (target ≤ 100 ms median).`,
    `Serving loop during one cold re-plan of that problem: longest gap between 1 ms timer ticks ${
      f(r.loopStallMs.inWorker, 1)
    } ms with the plan made in the planner's worker, ${f(r.loopStallMs.onThread, 1)} ms made on the serving thread.`,
    "",
    "## Why the gain over time-sharing is what it is",
    "",
    "Throughput per % of a GPU at each model's SLO (all8's SLOs): on a whole GPU; on the best smaller part alone",
    "(no neighbour); and on the best smaller part with a copy of itself in the rest of the GPU (the interference",
    "model at batch 8). A partition pays only by the last column over the first.",
    "",
    "| model | SLO (ms) | whole GPU | best part alone | gain | best part beside a copy | gain |",
    "|---|---|---|---|---|---|---|",
    ...r.partitionGains.map((g) =>
      `| ${g.model} | ${f(g.sloMs, 2)} | ${f(g.whole, 1)} | ${f(g.alone, 1)} (${g.alonePart} %) | ${
        f(g.alone / g.whole, 2)
      } | ${f(g.beside, 1)} (${g.besidePart} %) | ${f(g.beside / g.whole, 2)} |`
    ),
    "",
    "## GPUs needed at fixed rates (fractions of the bound's 4-GPU peak; up to 16 GPUs; – = cannot serve)",
    "",
    `| workload | rate (req/s) | ${POLICIES.filter((p) => p !== "ideal").join(" | ")} |`,
    `|---|---|${POLICIES.filter((p) => p !== "ideal").map(() => "---").join("|")}|`,
  );
  for (const w of r.workloads) {
    for (const g of w.gpusNeeded) {
      const cells = POLICIES.filter((p) => p !== "ideal").map((p) => g.byPolicy[p] ?? "–");
      lines.push(`| ${w.workload} | ${f(g.rate)} | ${cells.join(" | ")} |`);
    }
  }
  lines.push("", appPeaksMarkdown(r.apps));
  return lines.join("\n");
}
