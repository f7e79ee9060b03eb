/**
 * Interference-model benchmark: leave-one-model-out cross-validated error of the predicted slowdown and of
 * the predicted co-located latency, on every `profiles/<device>-pairs.csv` that has a profile beside it;
 * held out by split (fitted on the other splits) where a pairs file has more than one; and, on the H200,
 * the full-batch latency each gpu-let of a real replay measured next to its actual neighbours against what
 * the model predicts for them (`resource/fidelity/h200/`, `bench/results/gpu_replay/`).
 * Baseline: the mean slowdown of the training pairs (what a planner that adds a flat margin assumes).
 */
import { type CrossValidation, InterferenceModel, leaveOneModelOut } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, type Observation, observations } from "../src/planner/pairs.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { slowdownIn } from "../src/planner/validate.ts";
import { loadReplays } from "../src/sim/calibration.ts";
import { jobAsPlanGpu } from "../src/sim/plan_replay.ts";
import type { LatencyModel } from "../src/planner/latency_model.ts";

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
  heldOutSplits: { split: string; n: number; meanPct: number; maxPct: number; flatMeanPct: number }[];
}

/** Full-batch latency next to the real neighbours, measured against the model (H200 replays). */
export interface FidelityResult {
  gpulets: number;
  /** Mean |predicted − measured| / measured, %. */
  meanPct: number;
  /** Mean (predicted − measured) / measured, %: > 0 the model is pessimistic. */
  biasPct: number;
  /** The same for the flat margin: every neighbour adds the mean pairwise slowdown. */
  flatMeanPct: number;
  flatBiasPct: number;
  /** The model's pairwise slowdowns with each neighbour weighted by its measured busy share. */
  busyMeanPct: number;
  busyBiasPct: number;
  /** The flat margin with each neighbour weighted by its measured busy share. */
  busyFlatMeanPct: number;
  busyFlatBiasPct: number;
  rows: { run: string; gpulet: string; neighbours: number; busy: number; measuredMs: number; predictedMs: number }[];
}

/** A predictor that always answers the training mean slowdown. */
function flatMargin(train: Observation[]) {
  const mean = train.reduce((s, o) => s + o.slowdown, 0) / train.length;
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
      heldOutSplits: heldOutSplits(latency, obs),
    });
  }
  return results.sort((a, b) => a.device.localeCompare(b.device));
}

const splitOf = (o: Observation) => [o.part, o.otherPart].sort((a, b) => a - b).join("/");

/** Fit on every split but one, predict that one (only for pairs files with more than one split). */
function heldOutSplits(latency: LatencyModel, obs: readonly Observation[]): InterferenceResult["heldOutSplits"] {
  const splits = [...new Set(obs.map(splitOf))].sort();
  if (splits.length < 2) return [];
  return splits.map((split) => {
    const train = obs.filter((o) => splitOf(o) !== split);
    const test = obs.filter((o) => splitOf(o) === split);
    const model = InterferenceModel.fit(latency, train);
    const flat = train.reduce((s, o) => s + o.slowdown, 0) / train.length;
    const err = (p: number, o: Observation) => (100 * Math.abs(p - o.slowdown)) / o.slowdown;
    const errs = test.map((o) => err(model.slowdown(o.model, o.part, o.other, o.otherPart, o.batch), o));
    return {
      split,
      n: test.length,
      meanPct: errs.reduce((a, b) => a + b, 0) / errs.length,
      maxPct: Math.max(...errs),
      flatMeanPct: test.reduce((s, o) => s + err(flat, o), 0) / test.length,
    };
  });
}

/** Mean |predicted − measured| / measured and mean signed error, both %. */
function errorsPct(pairs: readonly { predicted: number; measured: number }[]): { meanPct: number; biasPct: number } {
  const rel = pairs.map((p) => (p.predicted - p.measured) / p.measured);
  return {
    meanPct: (100 * rel.reduce((s, x) => s + Math.abs(x), 0)) / rel.length,
    biasPct: (100 * rel.reduce((s, x) => s + x, 0)) / rel.length,
  };
}

/** Every H200 replay with a measured full-batch latency, against the H200 model with the actual neighbours. */
export async function measureFidelity(): Promise<FidelityResult> {
  const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h200.csv`);
  const obs = observations(await loadPairs(`${PROJECT_ROOT}/profiles/h200-pairs.csv`));
  const model = InterferenceModel.fit(latency, obs);
  const flat = obs.reduce((s, o) => s + o.slowdown, 0) / obs.length;
  const fidelity = `${PROJECT_ROOT}/resource/fidelity/h200`;
  const replays = [
    ...await loadReplays(`${fidelity}/turn3`, `${fidelity}/plans`),
    ...await loadReplays(`${PROJECT_ROOT}/bench/results/gpu_replay`),
  ];
  const rows: FidelityResult["rows"] = [];
  // Per gpu-let: the measured latency and what each predictor says.
  const cases: { measured: number; always: number; flat: number; busy: number; busyFlat: number }[] = [];
  for (const { run, plan } of replays) {
    if (run.pad_full) continue; // padded batches: every batch ran at the full size, a different regime
    const { gpu, models } = jobAsPlanGpu(plan.gpulets);
    const neighbours = plan.gpulets.length - 1;
    for (const f of run.functions) {
      const gi = plan.gpulets.findIndex((g) => g.part === f.part && g.functions.some((x) => x.name === f.name));
      if (gi < 0 || !f.svc_full_ms) continue;
      const solo = latency.latency(f.model, f.part, f.batch);
      const always = solo * slowdownIn(gpu, gpu.gpulets[gi], f.model, f.batch, models, model);
      // The same pairwise slowdowns (and the flat margin), each neighbour weighted by the share of time it was
      // measured busy.
      let weighted = 1, flatWeighted = 1;
      plan.gpulets.forEach((g, j) => {
        if (j === gi) return;
        const busy = Math.min(
          1,
          run.functions.filter((x) => g.part === x.part && g.functions.some((y) => y.name === x.name))
            .reduce((t, x) => t + x.busy, 0),
        );
        const worst = Math.max(
          0,
          ...g.functions.map((o) => model.slowdownAt(f.model, f.part, f.batch, o.model, g.part, o.batch) - 1),
        );
        weighted += busy * worst;
        flatWeighted += busy * (flat - 1);
      });
      cases.push({
        measured: f.svc_full_ms,
        always,
        flat: solo * (1 + neighbours * (flat - 1)),
        busy: solo * weighted,
        busyFlat: solo * flatWeighted,
      });
      rows.push({
        run: run.job,
        gpulet: `${f.name}@${f.part} % b${f.batch}`,
        neighbours,
        busy: f.busy,
        measuredMs: f.svc_full_ms,
        predictedMs: always,
      });
    }
  }
  const by = (k: "always" | "flat" | "busy" | "busyFlat") =>
    errorsPct(cases.map((c) => ({ predicted: c[k], measured: c.measured })));
  const [always, flatMargin, busy, busyFlat] = [by("always"), by("flat"), by("busy"), by("busyFlat")];
  return {
    gpulets: rows.length,
    meanPct: always.meanPct,
    biasPct: always.biasPct,
    flatMeanPct: flatMargin.meanPct,
    flatBiasPct: flatMargin.biasPct,
    busyMeanPct: busy.meanPct,
    busyBiasPct: busy.biasPct,
    busyFlatMeanPct: busyFlat.meanPct,
    busyFlatBiasPct: busyFlat.biasPct,
    rows,
  };
}

/** The fidelity part of the report. */
export function fidelityMarkdown(r: FidelityResult): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  return [
    "## H200: full-batch latency next to the real neighbours",
    "",
    `${r.gpulets} gpu-lets of the H200 replays (\`resource/fidelity/h200/turn3\`, \`bench/results/gpu_replay/\`; runs that`,
    "padded every batch left out): the measured full-batch latency (`svc_full_ms`) against the solo profile × the",
    "model's slowdown for the gpu-let's actual neighbours (the planner's rule: every neighbour always busy).",
    `Model: mean error **${f(r.meanPct)} %**, bias **${r.biasPct >= 0 ? "+" : ""}${
      f(r.biasPct)
    } %** (+: pessimistic). Flat margin`,
    `(each neighbour adds the mean pairwise slowdown): mean ${f(r.flatMeanPct)} %, bias ${
      r.flatBiasPct >= 0 ? "+" : ""
    }${f(r.flatBiasPct)} %.`,
    `The model's pairwise slowdowns with each neighbour weighted by the share of time it was busy: mean ${
      f(r.busyMeanPct)
    } %, bias ${r.busyBiasPct >= 0 ? "+" : ""}${f(r.busyBiasPct)} %; the flat margin weighted the same way: mean ${
      f(r.busyFlatMeanPct)
    } %, bias ${r.busyFlatBiasPct >= 0 ? "+" : ""}${f(r.busyFlatBiasPct)} %.`,
    "Goal (issue 21): ≤ 8 % mean, no systematic bias.",
    "",
    "| run | gpu-let | neighbours | busy | measured ms | predicted ms | error % |",
    "|---|---|---|---|---|---|---|",
    ...r.rows.map((x) =>
      `| ${x.run} | ${x.gpulet} | ${x.neighbours} | ${x.busy.toFixed(2)} | ${f(x.measuredMs, 2)} | ${
        f(x.predictedMs, 2)
      } | ${f((100 * (x.predictedMs - x.measuredMs)) / x.measuredMs)} |`
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
      );
    }
  }
  return lines.join("\n");
}
