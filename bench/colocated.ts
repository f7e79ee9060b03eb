/**
 * `deno run -A bench/colocated.ts`: fits `profiles/h200-colocated.csv`, per model the residual of whole plans
 * on the real H200 beyond what the pairs predict (`src/planner/colocated.ts`), from every replayed gpu-let with
 * a measured full-batch latency (`resource/fidelity/h200/turn3/`, `bench/results/gpu_replay{,_tail2,_tail2b,_tail3,_tail4}/`; padded runs
 * left out), each predicted next to its neighbours at their measured busy shares. Reports in
 * `bench/results/colocated.md` the error before and after, and leaving each mix out of the fit.
 */
import {
  type ColocatedCase,
  fitResiduals,
  formatResiduals,
  type Residual,
  residualFactor,
} from "../src/planner/colocated.ts";
import { InterferenceModel } from "../src/planner/interference.ts";
import { loadLatencyModel } from "../src/planner/latency_model.ts";
import { loadPairs, observations } from "../src/planner/pairs.ts";
import { loadReplays, measuredGpulets } from "../src/sim/calibration.ts";
import { PROJECT_ROOT } from "../src/runtime/worker_command.ts";

const latency = await loadLatencyModel(`${PROJECT_ROOT}/profiles/h200.csv`);
// The pairs alone: the residuals are fitted on what they leave.
const pairsOnly = InterferenceModel.fit(
  latency,
  observations(await loadPairs(`${PROJECT_ROOT}/profiles/h200-pairs.csv`)),
);
const fidelity = `${PROJECT_ROOT}/resource/fidelity/h200`;
const dirs = ["gpu_replay", "gpu_replay_tail2", "gpu_replay_tail2b", "gpu_replay_tail3", "gpu_replay_tail4"];
const replays = [
  ...await loadReplays(`${fidelity}/turn3`, `${fidelity}/plans`),
  ...(await Promise.all(dirs.map((d) => loadReplays(`${PROJECT_ROOT}/bench/results/${d}`)))).flat(),
];

// Alone, a gpu-let has nothing to correct.
const cases: (ColocatedCase & { mix: string })[] = measuredGpulets(replays)
  .filter((g) => g.neighbours.length > 0)
  .map(({ replay, fn, neighbours }) => ({
    mix: replay.run.job.split("__")[0],
    model: fn.model,
    batch: fn.batch,
    predictedMs: latency.latency(fn.model, fn.part, fn.batch) *
      pairsOnly.alongside({ model: fn.model, part: fn.part, batch: fn.batch }, neighbours),
    measuredMs: fn.svc_full_ms,
  }));

const fitted = fitResiduals(cases);
await Deno.writeTextFile(`${PROJECT_ROOT}/profiles/h200-colocated.csv`, formatResiduals(fitted));

/** Mean |error| and mean signed error (%) of relative errors `e` (predicted / measured − 1). */
function meanErrors(e: readonly number[]) {
  return {
    abs: (100 * e.reduce((s, x) => s + Math.abs(x), 0)) / e.length,
    bias: (100 * e.reduce((s, x) => s + x, 0)) / e.length,
  };
}
/** The errors of predictions corrected by `residuals`. */
const errors = (of: readonly ColocatedCase[], residuals: Record<string, Residual>) =>
  meanErrors(of.map((c) => (c.predictedMs * residualFactor(residuals, c.model, c.batch)) / c.measuredMs - 1));
const mixes = [...new Set(cases.map((c) => c.mix))].sort();
const heldOut: { c: ColocatedCase; factor: number }[] = [];
for (const mix of mixes) {
  const residuals = fitResiduals(cases.filter((c) => c.mix !== mix));
  for (const c of cases.filter((c) => c.mix === mix)) {
    heldOut.push({ c, factor: residualFactor(residuals, c.model, c.batch) });
  }
}
const heldOutErr = (of: typeof heldOut) =>
  meanErrors(of.map(({ c, factor }) => (c.predictedMs * factor) / c.measuredMs - 1));
const f1 = (x: number) => x.toFixed(1);
const models = [...new Set(cases.map((c) => c.model))].sort();
const lines = [
  "# Residuals of whole plans on the H200 beyond the pairs",
  "",
  `Command: \`deno run -A bench/colocated.ts\` (${new Date().toISOString()}). ${cases.length} replayed gpu-lets with`,
  `neighbours and a measured full-batch latency (${replays.length} replays of ${mixes.length} mixes; padded runs left out),`,
  "each predicted from the solo profile × the interference model of the pairs, next to its neighbours at their",
  "measured busy shares. Fitted per model (≥ 6 gpu-lets): `ln(measured / predicted) ≈ intercept + slope · ln batch`,",
  "ridge-shrunk toward no residual; written to `profiles/h200-colocated.csv`, which the planner and the",
  "simulators apply to every gpu-let with neighbours.",
  "",
  "| model | gpu-lets | factor at b1 / b3 / b8 | error before: mean / bias % | after | each mix held out of the fit |",
  "|---|---|---|---|---|---|",
  ...models.map((m) => {
    const of = cases.filter((c) => c.model === m);
    const before = errors(of, {}),
      after = errors(of, fitted),
      held = heldOutErr(heldOut.filter((h) => h.c.model === m));
    const factors = [1, 3, 8].map((b) => residualFactor(fitted, m, b).toFixed(2)).join(" / ");
    return `| ${m} | ${of.length} | ${factors} | ${f1(before.abs)} / ${f1(before.bias)} | ${f1(after.abs)} / ${
      f1(after.bias)
    } | ${f1(held.abs)} / ${f1(held.bias)} |`;
  }),
  (() => {
    const before = errors(cases, {}), after = errors(cases, fitted), held = heldOutErr(heldOut);
    return `| all | ${cases.length} | | ${f1(before.abs)} / ${f1(before.bias)} | ${f1(after.abs)} / ${
      f1(after.bias)
    } | ${f1(held.abs)} / ${f1(held.bias)} |`;
  })(),
  "",
  "Bias: mean of predicted/measured − 1 (negative: the model was optimistic).",
  "",
];
await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/colocated.md`, lines.join("\n"));
console.log(lines.join("\n"));
