/** The measured drain rate (`src/admission/drain_rate.ts`): what admission plans with. */
import assert from "node:assert/strict";
import { DRAIN_FLOOR, DrainRate } from "../../src/admission/drain_rate.ts";

Deno.test("drain rate: measured only over gaps with requests waiting; lower than the estimate wins, down to the floor", () => {
  const d = new DrainRate();
  assert.equal(d.plannable(4), 4); // nothing measured yet
  d.note(8, 100, true); // first end with a queue: the gap starts here
  d.note(8, 104, true); // 8 rows in 4 ms: 2 rows/ms
  assert.equal(d.plannable(3), 2);
  assert.equal(d.plannable(1), 1); // the estimate when it is lower
  // An idle stretch measures nothing: batches then end at the arrival rate.
  d.note(8, 108, false); // 2 rows/ms again, and the queue is empty after it
  d.note(1, 1108, true); // a second later: no sample
  d.note(1, 1108.5, true); // 2 rows/ms
  assert.equal(d.plannable(3), 2);
  // A stall (GC, a burst taking the loop) counts down only to the floor of the estimate.
  for (let t = 1200; t < 3000; t += 100) d.note(1, t, true);
  assert.equal(d.plannable(3), DRAIN_FLOOR * 3);
  d.reset();
  assert.equal(d.plannable(3), 3);
});
