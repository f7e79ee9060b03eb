/**
 * Interference-model benchmark: leave-one-model-out cross-validated error of the predicted slowdown and of
 * the predicted co-located latency, on every `profiles/<device>-pairs.csv` that has a profile beside it.
 * Baseline: the mean slowdown of the training pairs (what a planner that adds a flat margin assumes).
 */
import { type CrossValidation, InterferenceModel, leaveOneModelOut } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, type Observation, observations } from "../src/planner/pairs.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";

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
    });
  }
  return results.sort((a, b) => a.device.localeCompare(b.device));
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
  }
  return lines.join("\n");
}
