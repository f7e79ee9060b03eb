/**
 * The simulator in virtual time: a step from 30 % to 90 % of what 8 H100s serve, and back. The autoscaler
 * grows the GPUs in use within seconds and attainment recovers; the drop releases GPUs after the calm
 * period; a planner blind to interference serves late; schedules with mistakes name the line.
 */
import assert from "node:assert/strict";
import { Schedule } from "../../src/loadgen/schedule.ts";
import { InterferenceModel } from "../../src/planner/interference.ts";
import { loadLatencyModel } from "../../src/planner/latency_model.ts";
import { loadPairs, observations } from "../../src/planner/pairs.ts";
import { peakFor } from "../../src/planner/policies.ts";
import { parseWorkload, plannedFunctions } from "../../src/planner/workload.ts";
import { simulate } from "../../src/sim/simulator.ts";
import { ROOT } from "../helpers.ts";

const latency = await loadLatencyModel(`${ROOT}/profiles/h100.csv`);
const interference = InterferenceModel.fit(latency, observations(await loadPairs(`${ROOT}/profiles/h100-pairs.csv`)));
const file = `${ROOT}/resource/workloads/scen1.json`;
const planned = plannedFunctions(parseWorkload(await Deno.readTextFile(file), file), latency, file);
const functions = planned.map(({ rate: _rate, ...f }) => f);
const peak = peakFor({ device: "h100", gpus: 8, functions: planned, latency, interference }, "gpulet").scale;

/** 30 % of the 8-GPU peak, 90 % from 60 s, 30 % again from 120 s. */
function stepSchedule(): Schedule {
  const rows = ["time_s,function,rate"];
  for (const [t, load] of [[0, 0.3], [60, 0.9], [120, 0.3]]) {
    for (const f of planned) rows.push(`${t},${f.name},${f.rate * peak * load}`);
  }
  return Schedule.parse(rows.join("\n"));
}

Deno.test("simulate: a 3x step grows the GPUs and attainment recovers within 5 s; the drop releases them", () => {
  const config = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const r = simulate(config, functions, stepSchedule(), { stepMs: 100, warmupMs: 1000, seed: 3, seconds: 180 });
  assert.ok(r.attainment >= 0.98, `attainment ${r.attainment}`);
  assert.equal(r.late, 0, "every plan holds its SLOs under interference");
  const gpus = (from: number, to: number) =>
    Math.max(...r.timeline.filter((s) => s.t >= from && s.t < to).map((s) => s.gpus));
  assert.ok(gpus(70, 120) > gpus(10, 60), `GPUs grow: ${gpus(10, 60)} → ${gpus(70, 120)}`);
  assert.ok(gpus(170, 180) < gpus(70, 120), `GPUs released: ${gpus(70, 120)} → ${gpus(170, 180)}`);
  const step = r.recoveries.find((x) => x.at === 60)!;
  assert.ok(step.seconds !== null && step.seconds <= 5, `recovered in ${step.seconds} s`);
  assert.ok(r.gpuSeconds <= 1.4 * r.bestStaticGpuSeconds, `${r.gpuSeconds} vs best static ${r.bestStaticGpuSeconds}`);
  assert.ok(r.replans >= 3 && r.replans <= 8, `${r.replans} re-plans (no flapping)`);
});

Deno.test("simulate: plans blind to interference serve late; timeshare needs more GPU-seconds", () => {
  const run = (policy: "gpulet" | "gpulet-noint" | "timeshare") =>
    simulate({ device: "h100", gpus: 8, latency, interference, policy }, functions, stepSchedule(), {
      stepMs: 100,
      warmupMs: 1000,
      seed: 3,
      seconds: 180,
    });
  const [gpulet, blind, timeshare] = [run("gpulet"), run("gpulet-noint"), run("timeshare")];
  // Tail-aware sizing leaves blind plans some slack, not enough for the interference they ignore.
  assert.ok(blind.late > blind.arrivals * 0.2, `noint: ${blind.late} of ${blind.arrivals} late`);
  assert.ok(blind.attainment < gpulet.attainment);
  assert.ok(timeshare.gpuSeconds > gpulet.gpuSeconds, `timeshare ${timeshare.gpuSeconds} > ${gpulet.gpuSeconds}`);
});

Deno.test("simulate, request by request: the step recovers within 5 s, misses are served late, not lost", () => {
  const config = { device: "h100", gpus: 8, latency, interference, policy: "gpulet" as const };
  const options = { stepMs: 100, warmupMs: 1000, seed: 3, seconds: 100 };
  const fluid = simulate(config, functions, stepSchedule(), options);
  const requests = simulate(config, functions, stepSchedule(), { ...options, requests: true });
  // Every arrival is answered (the plan serves every function), and the counts add up.
  assert.equal(requests.shed, 0);
  assert.equal(requests.good + requests.late, requests.arrivals);
  assert.ok(requests.attainment >= 0.97, `attainment ${requests.attainment}`);
  const step = requests.recoveries.find((x) => x.at === 60)!;
  assert.ok(step.seconds !== null && step.seconds <= 5, `recovered in ${step.seconds} s`);
  // Before the step the p99 plan holds request by request, as it does in the fluid model.
  const before = requests.timeline.filter((s) => s.t >= 5 && s.t < 60);
  assert.ok(before.every((s) => s.attainment >= 0.99), JSON.stringify(before.map((s) => s.attainment)));
  assert.ok(Math.abs(requests.gpuSeconds - fluid.gpuSeconds) <= 0.1 * fluid.gpuSeconds);
});

Deno.test("schedules: steps and ramps; a bad row names its line and column", () => {
  const s = Schedule.parse("time_s,function,rate,shape\n0,a,10,step\n10,a,30,ramp\n20,a,5,step\n");
  assert.equal(s.rateAt("a", 5), 20);
  assert.equal(s.rateAt("a", 15), 30);
  assert.equal(s.rateAt("a", 25), 5);
  assert.equal(s.rateAt("b", 5), 0);
  assert.deepEqual(s.boundaries(), [0, 10, 20]);
  assert.throws(() => Schedule.parse("time_s,function,rate\n0,a,-1\n", "s.csv"), /s\.csv:2:3: rate -1 is below 0/);
  assert.throws(() => Schedule.parse("time_s,function,rate,shape\n0,a,1,zigzag\n", "s.csv"), /step or ramp/);
  assert.throws(() => Schedule.parse("time_s,rate\n0,1\n", "s.csv"), /missing column "function"/);
});
