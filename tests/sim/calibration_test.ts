/**
 * The request-level simulator against the H200 replays of this project's earlier plans
 * (`resource/fidelity/h200/`): at ≤ 0.85× the claimed peak, runs whose gpu-lets come within 10 points of the
 * measured share within SLO. The goal is every run (≥ 3 of 4 gpu-lets each); today 12 of 13 make it (9 before
 * the interference model of issue 21, 11 before the residuals of whole plans), and the misses follow the
 * interference model's. This holds today's level so it cannot slip unseen.
 */
import assert from "node:assert/strict";
import { calibrate, loadReplays } from "../../src/sim/calibration.ts";
import { profile, ROOT } from "../helpers.ts";

Deno.test("request sim vs the H200 replays: at least 12 of 13 runs at <= 0.85x peak have 3 of 4 gpu-lets within 10 points", async () => {
  const { latency, interference } = await profile("h200");
  const data = `${ROOT}/resource/fidelity/h200`;
  const c = calibrate(await loadReplays(`${data}/turn3`, `${data}/plans`), latency, interference);
  const misses = c.rows.filter((r) => r.load <= 0.85 && !r.near).map((r) =>
    `${r.job} ${r.gpulet}: ${r.measured.within} vs ${r.simulated.within.toFixed(3)}`
  );
  assert.equal(c.runs, 13);
  assert.ok(c.runsOk >= 12, `${c.runsOk} of ${c.runs} runs; misses:\n${misses.join("\n")}`);
  assert.ok(c.near >= 43, `${c.near} of ${c.gpulets} gpu-lets; misses:\n${misses.join("\n")}`);
});
