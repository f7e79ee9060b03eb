import assert from "node:assert/strict";
import { fixedGpulets, isFixedGpulet, slotBatch } from "../../src/controller/fixed_gpulets.ts";

Deno.test("fixed gpu-lets: N per function spread over the devices, marked fixed, no rate", () => {
  const layout = { gpuletsPerFunction: 2, part: 50, all: true };
  const g = fixedGpulets([{ name: "a", deadlineMs: 100 }, { name: "b", deadlineMs: 40 }], layout, 3);
  const where = g.map((x) => `${x.functions[0].name}@${x.gpu}:${x.part}`);
  assert.deepEqual(where, ["a@0:50", "a@1:50", "b@1:50", "b@2:50"]);
  assert.ok(g.every(isFixedGpulet));
  assert.ok(g.every((x) => x.functions[0].rate === 0));
  assert.ok(!isFixedGpulet({ gpu: 0, part: 50, functions: [{ ...g[0].functions[0], batch: 4 }] }));
});

Deno.test("slot batch: fixed from the warm-up; one function may go above the plan in a burst; time-shared keeps it", () => {
  const warm = { 1: 2, 4: 5, 16: 20, 32: 45 };
  // 2·20 ≤ 50 < 2·45: the warm-up fits a batch of 16 in a 50 ms deadline.
  assert.equal(slotBatch(0, 1, warm, 50, 32), 16, "fixed: the warm-up's batch");
  assert.equal(slotBatch(4, 1, warm, 50, 32), 16, "alone: up to what fits, above the plan's 4");
  assert.equal(slotBatch(32, 1, warm, 50, 32), 32, "never below the plan's batch");
  assert.equal(slotBatch(4, 2, warm, 50, 32), 4, "time-shared: the plan's batch");
  assert.equal(slotBatch(0, 1, warm, 50, 8), 4, "within maxBatch");
});
