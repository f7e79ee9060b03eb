import assert from "node:assert/strict";
import { chooseBatch, warmBatches } from "../../src/planner/fixed_layout.ts";

Deno.test("warm batches are powers of two up to maxBatch, and maxBatch itself", () => {
  assert.deepEqual(warmBatches(1), [1]);
  assert.deepEqual(warmBatches(8), [1, 2, 4, 8]);
  assert.deepEqual(warmBatches(12), [1, 2, 4, 8, 12]);
});

Deno.test("chooseBatch: the largest batch b with 2·L(b) ≤ SLO, within maxBatch; 1 when nothing fits", () => {
  const lat = { 1: 10, 2: 14, 4: 22, 8: 40, 16: 75 };
  assert.equal(chooseBatch(lat, 100, 32), 8); // 2·40 ≤ 100 < 2·75
  assert.equal(chooseBatch(lat, 100, 4), 4);
  assert.equal(chooseBatch(lat, 150, 32), 16);
  assert.equal(chooseBatch(lat, 15, 32), 1, "even batch 1 misses: still serve at 1");
});
