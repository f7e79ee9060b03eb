import assert from "node:assert/strict";
import { LiveStats, quantile } from "../../src/observability/live_stats.ts";
import { dashboardState } from "../../src/observability/dashboard_state.ts";

Deno.test("LiveStats: per-second rate, p99 and attainment over complete seconds; client errors left out", () => {
  let now = 1_000_000;
  const live = new LiveStats(120, () => now);
  const answer = (status: number, totalMs: number, withinSlo = status === 200) =>
    live.recordAnswer("f", { status, totalMs, withinSlo });
  // Second 1000: 8 good, 1 late, 1 shed, 1 expired, 1 client error (not counted).
  for (let i = 0; i < 8; i++) answer(200, 10 + i);
  answer(200, 500, false);
  answer(429, 0);
  answer(504, 300);
  answer(400, 1);
  now += 1000; // second 1001: nothing yet; second 1000 is complete
  assert.equal(live.attainment("f"), 8 / 11);
  assert.equal(live.rate("f", 1), 11);
  assert.equal(live.p99("f", 1), 500);
  const [last] = live.series("f", 1);
  assert.deepEqual(last, { t: 1000, rate: 11, p99Ms: 500, attainment: 8 / 11 });
  assert.equal(live.series("f", 60).length, 60);
  assert.equal(live.attainment("unknown"), null);
  // Two minutes later the window has moved on.
  now += 121_000;
  answer(200, 5);
  now += 1000;
  assert.equal(live.attainment("f"), 1);
  assert.equal(quantile([], 0.99), null);
  assert.equal(quantile([3, 1, 2], 0.5), 2);
});

Deno.test("dashboardState: utilisation from executors' busy time, free parts, planned rates", () => {
  let now = 5_000_000;
  const live = new LiveStats(120, () => now);
  live.recordBatch({ executor: "w1", rows: 8, requests: 8, computeMs: 200, workerMs: 2500 });
  live.recordBatch({ executor: "w2", rows: 8, requests: 8, computeMs: 200, workerMs: 1000 });
  now += 1000;
  const state = dashboardState(
    {
      mode: "sim",
      devices: 2,
      gpus: [{
        id: 0,
        gpulets: [
          { part: 50, functions: [{ name: "a", batch: 8, rate: 30 }], executors: ["w1"] },
          {
            part: 20,
            functions: [{ name: "b", batch: 4, rate: 5 }, { name: "c", batch: 2, rate: 1 }],
            executors: ["w2"],
          },
        ],
      }],
      functions: [{ name: "a", version: 2, sloMs: 100, queueRows: 3 }],
      changes: Array.from({ length: 12 }, (_, i) => ({
        at: `t${i}`,
        direction: "up",
        gpusBefore: i,
        gpusAfter: i + 1,
        reason: "r",
      })),
    },
    live,
    now,
  );
  assert.equal(state.gpusInUse, 1);
  assert.equal(state.gpus[0].free, 30);
  assert.deepEqual(state.gpus[0].gpulets.map((l) => l.utilisation), [0.5, 0.2]);
  assert.equal(state.functions[0].plannedRate, 30);
  assert.equal(state.functions[0].series.length, 60);
  assert.deepEqual(state.changes.map((c) => c.at), ["t11", "t10", "t9", "t8", "t7", "t6", "t5", "t4", "t3", "t2"]);
});
