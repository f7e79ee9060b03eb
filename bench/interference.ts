/**
 * Interference-model benchmark: leave-one-model-out cross-validated error of the predicted slowdown and of
 * the predicted co-located latency, on every `profiles/<device>-pairs.csv` that has a profile beside it;
 * held out by split (fitted on the other splits) where a pairs file has more than one; and, on the H200,
 * the full-batch latency each gpu-let of a real replay measured next to its actual neighbours against what
 * the model predicts for them (`resource/fidelity/h200/`, `bench/results/gpu_replay/`).
 * Baseline: the mean slowdown of the training pairs (what a planner that adds a flat margin assumes).
 */
import {
  type CrossValidation,
  InterferenceModel,
  leaveOneModelOut,
  meanSlowdown,
  type NeighbourLoad,
  type RunningBatch,
  type SplitTransfer,
  splitTransfers,
} from "../src/planner/interference.ts";
import type { Plan } from "../src/planner/plan.ts";
import { LatencyTable, neighbourLoad } from "../src/planner/sizing.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, type Observation, observations } from "../src/planner/pairs.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { slowdownIn } from "../src/planner/validate.ts";
import { loadReplays, measuredGpulets, type Replay } from "../src/sim/calibration.ts";
import { jobAsPlanGpu } from "../src/sim/plan_replay.ts";

type PlanGpu = Plan["gpus"][number];

export interface InterferenceResult {
  device: string;
  pairsFile: string;
  observations: number;
  models: string[];
  fitMs: number;
  model: CrossValidation;
  flatMargin: CrossValidation;
  /** Error on the fitted pairs themselves, after the per-pair corrections (what planning with known pairs sees). */
  inSample: { meanPct: number; maxPct: number };
  /** Per split held out (fitted on the others): mean and max % error of the slowdown, model and flat margin. */
  heldOutSplits: SplitTransfer[];
  /** Fitted on one split alone, every other split predicted (what a device measured at 50/50 only gets). */
  fromOneSplit: SplitTransfer[];
}

/** Mean |predicted − measured| / measured and mean signed error (> 0: pessimistic), both %. */
export interface ErrorPct {
  meanPct: number;
  biasPct: number;
}

/** Full-batch latency next to the real neighbours, measured against the model (H200 replays). */
export interface FidelityResult {
  gpulets: number;
  /** The model, each neighbour function weighted by its measured busy share (+ the client overhead). */
  busy: ErrorPct;
  /** The same with the client overhead fitted on the other mixes only (leave one mix out). */
  busyHeldOut: ErrorPct & { overheadsMs: number[] };
  /** Only gpu-lets whose batch takes ≥ 0.2 ms alone (what SLOs are made of). */
  busyLarge: ErrorPct & { n: number };
  /** The planner's rule: busy shares from the replay's rates and the modelled latencies. */
  planner: ErrorPct;
  /** Every neighbour always busy (the rule the planner had before). */
  always: ErrorPct;
  /** Flat margin (mean pairwise slowdown − 1) per neighbour, weighted by measured busy shares. */
  busyFlat: ErrorPct;
  /** By number of neighbours: the busy-weighted model's error. */
  byNeighbours: ({ neighbours: number; n: number } & ErrorPct)[];
  rows: {
    run: string;
    gpulet: string;
    neighbours: number;
    busy: number;
    measuredMs: number;
    predictedMs: number;
    plannerMs: number;
  }[];
}

/** A predictor that always answers the training mean slowdown. */
function flatMargin(train: readonly Observation[]) {
  const mean = meanSlowdown(train);
  return { slowdown: () => mean };
}

/** Runs the benchmark on every device with a pairs file. */
export async function measureInterference(progress: (s: string) => void): Promise<InterferenceResult[]> {
  const results: InterferenceResult[] = [];
  for await (const entry of Deno.readDir(`${PROJECT_ROOT}/profiles`)) {
    const m = entry.name.match(/^(.+)-pairs\.csv$/);
    if (!m) continue;
    const device = m[1];
    const pairsFile = `profiles/${entry.name}`;
    progress(`interference: ${device}: leave-one-model-out over ${pairsFile}`);
    const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/${device}.csv`);
    const obs = observations(await loadPairs(`${PROJECT_ROOT}/${pairsFile}`));
    const t0 = performance.now();
    const full = InterferenceModel.fit(latency, obs);
    const fitMs = performance.now() - t0;
    const inSample = obs.map((o) =>
      (100 * Math.abs(full.slowdown(o.model, o.part, o.other, o.otherPart, o.batch) - o.slowdown)) / o.slowdown
    );
    results.push({
      device,
      pairsFile,
      observations: obs.length,
      models: [...new Set(obs.map((o) => o.model))].sort(),
      fitMs,
      model: leaveOneModelOut(latency, obs),
      flatMargin: leaveOneModelOut(latency, obs, flatMargin),
      inSample: { meanPct: inSample.reduce((a, b) => a + b, 0) / inSample.length, maxPct: Math.max(...inSample) },
      heldOutSplits: splitTransfers(latency, obs, "heldOut"),
      fromOneSplit: splitTransfers(latency, obs, "alone"),
    });
  }
  return results.sort((a, b) => a.device.localeCompare(b.device));
}

/** Mean |predicted − measured| / measured and mean signed error, both %. */
function errorsPct(pairs: readonly { predicted: number; measured: number }[]): ErrorPct {
  const rel = pairs.map((p) => (p.predicted - p.measured) / p.measured);
  return {
    meanPct: (100 * rel.reduce((s, x) => s + Math.abs(x), 0)) / rel.length,
    biasPct: (100 * rel.reduce((s, x) => s + x, 0)) / rel.length,
  };
}

/** One gpu-let of a replay: what it measured and what it ran next to. */
interface FidelityCase {
  run: string;
  mix: string;
  self: RunningBatch;
  soloMs: number;
  measuredMs: number;
  busy: number;
  /** Neighbours with their functions' measured busy shares. */
  measured: NeighbourLoad[];
  /** Neighbours with busy shares from the replay's rates and modelled latencies (the planner's view). */
  planned: NeighbourLoad[];
}

/** Modelled latencies of a replayed GPU at the rates it ran: the planner's fixed point, a few rounds. */
function plannedGpu(gpu: PlanGpu, models: ReadonlyMap<string, string>, model: InterferenceModel, table: LatencyTable) {
  let current = gpu;
  for (let round = 0; round < 4; round++) {
    const at = current;
    current = {
      ...at,
      gpulets: at.gpulets.map((g) => ({
        ...g,
        functions: g.functions.map((f) => {
          const m = models.get(f.name)!;
          const alpha = slowdownIn(at, g, m, f.batch, models, model, table);
          return { ...f, latencyMs: table.latency(m, g.part, f.batch) * alpha };
        }),
      })),
    };
  }
  return current;
}

/** Every H200 replay with a measured full-batch latency, against the H200 model with the actual neighbours. */
export async function measureFidelity(): Promise<FidelityResult> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h200.csv`);
  const table = new LatencyTable(latency);
  const obs = observations(await loadPairs(`${PROJECT_ROOT}/profiles/h200-pairs.csv`));
  const model = InterferenceModel.fit(latency, obs);
  const flat = flatMargin(obs).slowdown();
  const fidelity = `${PROJECT_ROOT}/resource/fidelity/h200`;
  const replays = [
    ...await loadReplays(`${fidelity}/turn3`, `${fidelity}/plans`),
    ...await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay`),
  ];
  // Per replay, every gpu-let's load as the planner sizes it (computed once, for each of its gpu-lets).
  const plannedLoads = new Map<Replay, NeighbourLoad[]>();
  const loadsOf = (replay: Replay) => {
    let loads = plannedLoads.get(replay);
    if (!loads) {
      const { gpu, models } = jobAsPlanGpu(replay.plan.gpulets, table, replay.scale);
      loads = plannedGpu(gpu, models, model, table).gpulets.map((g) =>
        neighbourLoad(table, g.part, g.functions.map((o) => ({ ...o, model: models.get(o.name)! })))
      );
      plannedLoads.set(replay, loads);
    }
    return loads;
  };
  const cases: FidelityCase[] = measuredGpulets(replays).map(({ replay, index, fn, neighbours }) => ({
    run: replay.run.job,
    mix: replay.run.job.split("__")[0],
    self: { model: fn.model, part: fn.part, batch: fn.batch },
    soloMs: latency.latency(fn.model, fn.part, fn.batch),
    measuredMs: fn.svc_full_ms,
    busy: fn.busy,
    measured: neighbours,
    planned: loadsOf(replay).filter((_, j) => j !== index),
  }));
  const withOverhead = (ms: number) => new InterferenceModel(latency, { ...model.params, clientOverheadMs: ms });
  const predict = (m: InterferenceModel, c: FidelityCase, loads: NeighbourLoad[]) =>
    c.soloMs * m.alongside(c.self, loads);
  const errorsOf = (m: InterferenceModel, of: readonly FidelityCase[]) =>
    errorsPct(of.map((c) => ({ predicted: predict(m, c, c.measured), measured: c.measuredMs })));
  // Leave one mix out: the client overhead from the other mixes, on a 0.5 µs grid.
  const mixes = [...new Set(cases.map((c) => c.mix))].sort();
  const overheadsMs: number[] = [];
  const heldOut: { predicted: number; measured: number }[] = [];
  for (const mix of mixes) {
    const train = cases.filter((c) => c.mix !== mix);
    let best = { err: Infinity, ms: 0 };
    for (let ms = 0; ms <= 0.02 + 1e-12; ms += 0.0005) {
      const err = errorsOf(withOverhead(ms), train).meanPct;
      if (err < best.err) best = { err, ms };
    }
    overheadsMs.push(Number(best.ms.toFixed(4)));
    const m = withOverhead(best.ms);
    for (const c of cases.filter((c) => c.mix === mix)) {
      heldOut.push({ predicted: predict(m, c, c.measured), measured: c.measuredMs });
    }
  }
  const alwaysBusy = (loads: NeighbourLoad[]) =>
    loads.map((n) => ({ ...n, functions: n.functions.map((f) => ({ ...f, busy: 1 })) }));
  const large = cases.filter((c) => c.soloMs >= 0.2);
  const counts = [...new Set(cases.map((c) => c.measured.length))].sort((a, b) => a - b);
  return {
    gpulets: cases.length,
    busy: errorsOf(model, cases),
    busyHeldOut: { ...errorsPct(heldOut), overheadsMs },
    busyLarge: { ...errorsOf(model, large), n: large.length },
    planner: errorsPct(cases.map((c) => ({ predicted: predict(model, c, c.planned), measured: c.measuredMs }))),
    always: errorsPct(
      cases.map((c) => ({ predicted: predict(model, c, alwaysBusy(c.measured)), measured: c.measuredMs })),
    ),
    busyFlat: errorsPct(cases.map((c) => ({
      predicted: c.soloMs *
        (1 + c.measured.reduce((s, n) => s + n.functions.reduce((t, f) => t + Math.min(1, f.busy), 0), 0) * (flat - 1)),
      measured: c.measuredMs,
    }))),
    byNeighbours: counts.map((k) => {
      const of = cases.filter((c) => c.measured.length === k);
      return { neighbours: k, n: of.length, ...errorsOf(model, of) };
    }),
    rows: cases.map((c) => ({
      run: c.run,
      gpulet: `${c.self.model}@${c.self.part} % b${c.self.batch}`,
      neighbours: c.measured.length,
      busy: c.busy,
      measuredMs: c.measuredMs,
      predictedMs: predict(model, c, c.measured),
      plannerMs: predict(model, c, c.planned),
    })),
  };
}

/** The fidelity part of the report. */
export function fidelityMarkdown(r: FidelityResult): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const e = (x: ErrorPct) => `mean **${f(x.meanPct)} %**, bias ${x.biasPct >= 0 ? "+" : ""}${f(x.biasPct)} %`;
  return [
    "## H200: full-batch latency next to the real neighbours",
    "",
    `${r.gpulets} gpu-lets of the H200 replays (\`resource/fidelity/h200/turn3\`, \`bench/results/gpu_replay/\`; runs that`,
    "padded every batch left out): the measured full-batch latency (`svc_full_ms`) against the solo profile × the",
    "model's slowdown for the gpu-let's actual neighbours, fitted on `profiles/h200-pairs.csv` only. Bias > 0:",
    "pessimistic. Goal (issue 21): ≤ 8 % mean, no systematic bias.",
    "",
    `- Each neighbour's functions weighted by their measured busy share, plus the client overhead: ${e(r.busy)}.`,
    `- The same, the client overhead fitted on the other mixes only (leave one mix out: ${
      r.busyHeldOut.overheadsMs.join(", ")
    } ms): ${e(r.busyHeldOut)}.`,
    `- The same on the ${r.busyLarge.n} gpu-lets whose batch takes ≥ 0.2 ms alone: ${e(r.busyLarge)}.`,
    `- The planner's rule (busy shares from the rates and modelled latencies): ${e(r.planner)}.`,
    `- Every neighbour always busy (the planner's rule before): ${e(r.always)}.`,
    `- Flat margin (mean pairwise slowdown) per neighbour function, busy-weighted: ${e(r.busyFlat)}.`,
    "",
    "Several neighbours (busy-weighted model):",
    "",
    "| neighbours | gpu-lets | mean % | bias % |",
    "|---|---|---|---|",
    ...r.byNeighbours.map((x) => `| ${x.neighbours} | ${x.n} | ${f(x.meanPct)} | ${f(x.biasPct)} |`),
    "",
    "| run | gpu-let | neighbours | busy | measured ms | predicted ms | error % | planner's ms |",
    "|---|---|---|---|---|---|---|---|",
    ...r.rows.map((x) =>
      `| ${x.run} | ${x.gpulet} | ${x.neighbours} | ${x.busy.toFixed(2)} | ${f(x.measuredMs, 2)} | ${
        f(x.predictedMs, 2)
      } | ${f((100 * (x.predictedMs - x.measuredMs)) / x.measuredMs)} | ${f(x.plannerMs, 2)} |`
    ),
    "",
  ].join("\n");
}

/** The markdown report. */
export function interferenceMarkdown(results: InterferenceResult[], command: string): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    "# Interference model: leave-one-model-out cross-validation",
    "",
    `Command: \`${command}\` (${new Date().toISOString()}). For each model, the model is fitted on the pairs that`,
    "do not involve it and predicts the ones that do (as victim or as neighbour). Errors: |predicted − measured|",
    "slowdown, and the same as % of the measured co-located latency. Target: mean ≤ 5 %, max ≤ 15 %.",
    "",
  ];
  for (const r of results) {
    lines.push(
      `## ${r.device} (${r.pairsFile}: ${r.observations} observations, ${r.models.length} models; full fit ${
        f(r.fitMs, 0)
      } ms)`,
      "",
      "| left-out model | n | mean abs err (slowdown) | max abs err | mean % | max % | flat margin mean % | flat margin max % |",
      "|---|---|---|---|---|---|---|---|",
      ...r.model.perModel.map((p, i) =>
        `| ${p.model} | ${p.n} | ${f(p.meanAbsSlowdown, 3)} | ${f(p.maxAbsSlowdown, 3)} | ${f(p.meanPct)} | ${
          f(p.maxPct)
        } | ${f(r.flatMargin.perModel[i].meanPct)} | ${f(r.flatMargin.perModel[i].maxPct)} |`
      ),
      `| **all** | ${r.model.overall.n} | ${f(r.model.overall.meanAbsSlowdown, 3)} | ${
        f(r.model.overall.maxAbsSlowdown, 3)
      } | **${f(r.model.overall.meanPct)}** | **${f(r.model.overall.maxPct)}** | ${f(r.flatMargin.overall.meanPct)} | ${
        f(r.flatMargin.overall.maxPct)
      } |`,
      "",
      `On the pairs it was fitted on (with per-pair corrections): mean ${f(r.inSample.meanPct)} %, max ${
        f(r.inSample.maxPct)
      } %.`,
      "",
    );
    if (r.heldOutSplits.length > 0) {
      lines.push(
        "Held out by split (fitted on the other splits, the split's pairs predicted; goal ≤ 5 % mean):",
        "",
        "| held-out split | n | mean % | max % | flat margin mean % |",
        "|---|---|---|---|---|",
        ...r.heldOutSplits.map((h) =>
          `| ${h.split} | ${h.n} | ${f(h.meanPct)} | ${f(h.maxPct)} | ${f(h.flatMeanPct)} |`
        ),
        "",
        "Fitted on one split alone, every other split predicted:",
        "",
        "| fitted on | n predicted | mean % | bias % | max % | flat margin mean % |",
        "|---|---|---|---|---|---|",
        ...r.fromOneSplit.map((h) =>
          `| ${h.split} | ${h.n} | ${f(h.meanPct)} | ${f(h.biasPct)} | ${f(h.maxPct)} | ${f(h.flatMeanPct)} |`
        ),
        "",
      );
    }
  }
  return lines.join("\n");
}
