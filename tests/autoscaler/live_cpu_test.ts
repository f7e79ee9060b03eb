/**
 * Autoscaling with real inference on `cpu:2` (this machine's cores as two devices): googlenet under a step
 * from 4/s to 32/s needs a second device, and gives it back after the drop. Every request is answered.
 */
import assert from "node:assert/strict";
import { runOpenLoop } from "../../src/loadgen/open_loop.ts";
import { Schedule } from "../../src/loadgen/schedule.ts";
import { discoverTargets, gpuSampler } from "../../src/api/load_targets.ts";
import { DEFAULT_SCALE_POLICY } from "../../src/autoscaler/policy.ts";
import { deploy, modelFunctionFolder, processAlive, startTestServer } from "../helpers.ts";

Deno.test("cpu:2: a step adds a device with real workers and the drop releases it", async () => {
  const server = await startTestServer({ devices: "cpu:2", scale: { ...DEFAULT_SCALE_POLICY, calmMs: 4000 } });
  const pids = new Set<number>();
  try {
    const deployed = await deploy(server, await modelFunctionFolder("googlenet", "googlenet", 2500, 16));
    assert.equal((deployed.gpulets as unknown[]).length, 1, "one gpu-let before any traffic");
    const targets = await discoverTargets(server.url, ["googlenet"]);
    const schedule = Schedule.parse("time_s,function,rate\n0,googlenet,4\n5,googlenet,32\n20,googlenet,4\n");
    const watch = setInterval(async () => {
      const plan = await (await fetch(`${server.url}/admin/plan`)).json();
      for (const w of plan.workers) pids.add(w.pid);
    }, 500);
    const report = await runOpenLoop({
      url: new URL(server.url),
      targets,
      schedule,
      seconds: 32,
      seed: 5,
      sampleGpus: gpuSampler(server.url),
    }).finally(() => clearInterval(watch));
    const o = report.overall;
    const t = report.timeline;
    const detail = `${JSON.stringify(o)}\n${t.map((s) => `${s.t}:${s.attainment?.toFixed(2)}/${s.gpus}`).join(" ")}`;
    assert.equal(o.lost, 0, `lost requests\n${detail}`);
    assert.equal(o.answered, o.sent);
    // No request failed because workers were started or stopped (a missed deadline is a 504, not a failure).
    for (const code of Object.keys(o.errors)) assert.equal(code, "504", `failed requests\n${detail}`);
    assert.ok(o.ok >= 0.8 * o.sent, `most requests served\n${detail}`);
    const gpus = t.map((s) => s.gpus ?? 0);
    assert.equal(Math.max(...gpus.slice(1, 5)), 1, `one device at 4/s\n${detail}`);
    assert.equal(Math.max(...gpus.slice(8, 20)), 2, `two devices at 32/s\n${detail}`);
    assert.equal(gpus[gpus.length - 1], 1, `one device again after the drop\n${detail}`);
    assert.ok(pids.size >= 2, `real worker processes served: ${[...pids]}`);
  } finally {
    await server.shutdown();
  }
  for (const pid of pids) assert.ok(!processAlive(pid), `worker ${pid} stopped with the controller`);
});
