import assert from "node:assert/strict";
import { LatencyModel, loadLatencyModel, ProfileError } from "../../src/planner/latency_model.ts";
import { ROOT } from "../helpers.ts";

const small = LatencyModel.parse(
  [
    "model,part,batch,latency_ms",
    "m,50,1,4",
    "m,50,4,10",
    "m,100,1,2",
    "m,100,4,6",
  ].join("\n"),
  "small.csv",
);

Deno.test("latency model: exact points, batches linear between, parts linear in 1/part between", () => {
  assert.equal(small.latency("m", 50, 4), 10);
  assert.equal(small.latency("m", 50, 2), 6);
  // Part 75 is 1/3 of the way from 1/50 to 1/100: 4 + (2 − 4)·(1/75 − 1/50)/(1/100 − 1/50) = 2.6667.
  assert.ok(Math.abs(small.latency("m", 75, 1) - (4 - 2 * (2 / 3))) < 1e-9);
  assert.deepEqual(small.parts("m"), [50, 100]);
  assert.deepEqual(small.batches("m"), [1, 4]);
});

Deno.test("latency model: unknown models and unprofiled regions are errors, never zero", () => {
  const err = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e) => e instanceof ProfileError && re.test(e.message));
  err(() => small.latency("x", 50, 1), /no profile for model "x" in small\.csv \(profiled: m\)/);
  err(() => small.latency("m", 40, 1), /part 40 % is outside the profiled parts 50\.\.100 %/);
  err(() => small.latency("m", 50, 8), /batch 8 is outside the profiled batches 1\.\.4/);
  err(
    () => LatencyModel.parse("model,part,batch,latency_ms\nm,50,1,4\nm,50,1,5\n", "d.csv"),
    /d\.csv:3: m,50,1 is profiled twice \(first on line 2\)/,
  );
  err(
    () => LatencyModel.parse("model,part,batch,latency_ms\nm,50,1,4\nm,100,2,5\n", "g.csv"),
    /m has batches 2 at part 100 but 1 at a smaller part/,
  );
});

Deno.test("the shipped H100 profile: 8 models, parts 10..100, batches 1..32, latency falling with part", async () => {
  const h100 = await loadLatencyModel(`${ROOT}/profiles/h100.csv`);
  assert.deepEqual(h100.models(), [
    "bert",
    "densenet161",
    "googlenet",
    "lenet",
    "mnasnet1_0",
    "mobilenet_v2",
    "resnet50",
    "vgg16",
  ]);
  assert.deepEqual(h100.commonParts(), [10, 20, 30, 40, 50, 60, 70, 80, 100]);
  assert.equal(h100.latency("resnet50", 50, 8), 2.6009);
  // 90 % was not measured: it lies between 80 % and 100 %.
  const l90 = h100.latency("resnet50", 90, 16);
  assert.ok(l90 < h100.latency("resnet50", 80, 16) && l90 > h100.latency("resnet50", 100, 16));
});
