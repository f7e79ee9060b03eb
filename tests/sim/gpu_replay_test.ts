/**
 * The request-level simulator against a real GPU: the p99 plans this project replayed on an H200 under MPS
 * (`bench/results/gpu_replay/`, made by `../shared/tools/gpu_replay/`), at 0.9× and at 1.35×, 1.8× or 2.7× their
 * claimed peak, and the plans of issue 21 (`bench/results/gpu_replay_tail*`). The simulated share within SLO
 * is within a few points of the measured one for every function.
 */
import assert from "node:assert/strict";
import { loadReplays } from "../../src/sim/calibration.ts";
import { replayGpu } from "../../src/sim/request_sim.ts";
import { profile, ROOT } from "../helpers.ts";

/** Every function of the replays in `dir`, its measured share within SLO beside the simulated one. */
async function simulatedBesideReal(dir: string) {
  const { latency, interference } = await profile("h200");
  const replays = await loadReplays(`${ROOT}/${dir}`);
  const functions = replays.flatMap(({ run, plan, scale }) => {
    const sim = replayGpu(plan.gpulets, latency, interference, { seconds: 20, seed: 1, rateScale: scale });
    return run.functions.map((real) => {
      const simulated = sim.find((s) => s.name === real.name)!.within;
      return {
        real: real.within,
        simulated,
        what: `${run.job} ${real.name}: real ${real.within}, simulated ${simulated}`,
      };
    });
  });
  return { replays: replays.length, functions };
}

Deno.test("request sim: within 2 points of the real H200's share within SLO where it held, 6 where it was overloaded", async () => {
  const { replays, functions } = await simulatedBesideReal("bench/results/gpu_replay");
  assert.ok(replays >= 9, `${replays} replays`);
  // At 2.7× the claimed peak a gpu-let 86 % busy turns 2 % of service time into 5 points of share.
  for (const f of functions) assert.ok(Math.abs(f.simulated - f.real) <= (f.real >= 0.98 ? 0.02 : 0.06), f.what);
  // Not only plans that met every SLO: at 2.7× the claimed peak some functions miss.
  const missedSomewhere = functions.filter((f) => f.real < 0.999).length;
  assert.ok(
    functions.length >= 30 && missedSomewhere >= 3,
    `${functions.length} functions, ${missedSomewhere} with misses`,
  );
});

Deno.test("request sim: within 3.5 points of the real H200 for the plans of issue 21", async () => {
  // Ten one-GPU mixes at 0.5×, 0.9× and 1.0× their claimed peak (`bench/gpu_jobs.ts`): 30 replays with the
  // full-batch tail bound, the same 30 again with nine of their 1.0× plans at 1.2× or 1.4× their rates, 13
  // plans of the batch chain (every mix at 0.9×, three at 1.0×), and 26 of the chain with the residuals of
  // several neighbours (every mix at 0.9× and 1.0×, six 1.0× plans at 1.2× their rates), and 20 of the chain
  // with a service factor per batch (every mix at 0.9× and 1.0×).
  const rounds = [
    ["bench/results/gpu_replay_tail2", 30],
    ["bench/results/gpu_replay_tail2b", 39],
    ["bench/results/gpu_replay_tail3", 13],
    ["bench/results/gpu_replay_tail4", 26],
    ["bench/results/gpu_replay_tail5", 20],
  ] as const;
  for (const [dir, count] of rounds) {
    const { replays, functions } = await simulatedBesideReal(dir);
    assert.equal(replays, count, dir);
    // The worst: densenet161 at 20 % b3 next to three gpu-lets ran its full batch 41 % over the pairs'
    // prediction, 16 % over with its residual (`profiles/h200-colocated.csv`): 96.0 % real, 99.0 % simulated.
    for (const f of functions) assert.ok(Math.abs(f.simulated - f.real) <= 0.035, f.what);
    assert.ok(functions.length >= 40, `${functions.length} functions`);
  }
});
