import assert from "node:assert/strict";
import { predictCsv } from "../../src/cli/interference.ts";
import { CsvError } from "../../src/planner/csv.ts";
import { InterferenceModel, leaveOneModelOut, splitTransfers } from "../../src/planner/interference.ts";
import { loadLatencyModel, ProfileError } from "../../src/planner/latency_model.ts";
import { loadPairs, observations } from "../../src/planner/pairs.ts";
import { ROOT } from "../helpers.ts";

const latency = await loadLatencyModel(`${ROOT}/profiles/h100.csv`);
const obs = observations(await loadPairs(`${ROOT}/profiles/h100-pairs.csv`));
const model = InterferenceModel.fit(latency, obs);

Deno.test("interference: measured H100 pairs are reproduced closely", () => {
  const errors = obs.map((o) =>
    Math.abs(model.slowdown(o.model, o.part, o.other, o.otherPart, o.batch) - o.slowdown) / o.slowdown
  );
  assert.ok(errors.reduce((a, b) => a + b) / errors.length < 0.04, "mean error on fitted pairs below 4 %");
});

Deno.test("interference: unseen models are placeable, and heavier neighbours hurt more", () => {
  // densenet161 and mnasnet1_0 are in no pair.
  const [d, m] = model.pair("densenet161", 50, "mnasnet1_0", 50, 8);
  assert.ok(d >= 1 && d < 2 && m >= 1 && m < 2, `${d} ${m}`);
  assert.ok(model.slowdown("resnet50", 50, "vgg16", 50, 8) > model.slowdown("resnet50", 50, "lenet", 50, 8));
  // A victim on a smaller share suffers more from the same neighbour (also for unseen models).
  assert.ok(model.slowdown("googlenet", 30, "bert", 70, 8) > model.slowdown("googlenet", 70, "bert", 30, 8));
  assert.ok(
    model.slowdown("densenet161", 30, "mnasnet1_0", 70, 8) > model.slowdown("densenet161", 70, "mnasnet1_0", 30, 8),
  );
  assert.throws(() => model.slowdown("nope", 50, "vgg16", 50, 8), ProfileError);
});

Deno.test("interference: leave-one-model-out beats a flat margin on the H100 pairs", () => {
  const cv = leaveOneModelOut(latency, obs);
  const flat = leaveOneModelOut(latency, obs, (train) => {
    const mean = train.reduce((s, o) => s + o.slowdown, 0) / train.length;
    return { slowdown: () => mean };
  });
  // Each observation is tested twice: once with its victim left out, once with its neighbour left out (once for self-pairs).
  assert.equal(cv.overall.n, obs.reduce((n, o) => n + (o.model === o.other ? 1 : 2), 0));
  assert.ok(cv.overall.meanPct < flat.overall.meanPct, `${cv.overall.meanPct} vs ${flat.overall.meanPct}`);
  assert.ok(cv.overall.meanPct < 6, `mean ${cv.overall.meanPct} %`);
});

Deno.test("interference predict CSV: five query columns in, slowdowns out; bad rows name their line", () => {
  const out = predictCsv(model, "model_a,part_a,model_b,part_b,batch,note\nresnet50,30,vgg16,70,8,x\n", "q.csv");
  const [header, row] = out.trim().split("\n");
  assert.equal(header, "model_a,part_a,model_b,part_b,batch,pred_slowdown_a,pred_slowdown_b");
  const cells = row.split(",");
  assert.deepEqual(cells.slice(0, 5), ["resnet50", "30", "vgg16", "70", "8"]);
  assert.ok(Number(cells[5]) > 1.2 && Number(cells[6]) > 1);
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => predictCsv(model, text, "q.csv"), (e) => e instanceof CsvError && re.test(e.message));
  bad("model_a,part_a,model_b,part_b,batch\nresnet50,60,vgg16,70,8\n", /^q\.csv:2: parts 60 \+ 70 exceed 100 %/);
  bad("model_a,part_a,model_b,part_b,batch\nresnet50,50,foo,50,8\n", /^q\.csv:2: no profile for model "foo"/);
  bad("model_a,part_a,model_b,batch\nresnet50,50,foo,8\n", /^q\.csv:1: missing column "part_b"/);
});

Deno.test("interference: fitted on the H200's 50/50 pairs alone, it predicts the measured 30/70 and 10/90 pairs within 5 %", async () => {
  const h200 = await loadLatencyModel(`${ROOT}/profiles/h200.csv`);
  const all = observations(await loadPairs(`${ROOT}/profiles/h200-pairs.csv`));
  assert.equal(all.filter((o) => o.part === 50 && o.otherPart === 50).length, 128);
  const fromHalf = splitTransfers(h200, all, "alone").find((t) => t.split === "50/50")!;
  assert.equal(fromHalf.n, 256);
  assert.ok(fromHalf.meanPct < 5 && fromHalf.meanPct < fromHalf.flatMeanPct / 2, JSON.stringify(fromHalf));
});

Deno.test("interference: neighbours count by the share of time they are busy, and every client adds a launch overhead", () => {
  const self = { model: "resnet50", part: 30, batch: 2 };
  const pair = model.slowdownAt("resnet50", 30, 2, "vgg16", 40, 4);
  const at = (busy: number) => model.alongside(self, [{ part: 40, functions: [{ model: "vgg16", batch: 4, busy }] }]);
  const overhead = model.overheadFactor(self, 1);
  assert.ok(overhead > 0 && overhead < 0.01, `${overhead}`);
  assert.ok(Math.abs(at(0) - (1 + overhead)) < 1e-12);
  assert.ok(Math.abs(at(1) - (pair + overhead)) < 1e-12);
  assert.ok(Math.abs(at(0.5) - (1 + overhead + (pair - 1) / 2)) < 1e-12);
  // Two busy neighbours add up; what runs at the moment is the simulators' rule.
  const two = model.alongside(self, [
    { part: 40, functions: [{ model: "vgg16", batch: 4, busy: 1 }] },
    { part: 30, functions: [{ model: "bert", batch: 1, busy: 1 }] },
  ]);
  const bert = model.slowdownAt("resnet50", 30, 2, "bert", 30, 1);
  assert.ok(Math.abs(two - (pair + bert - 1 + model.overheadFactor(self, 2))) < 1e-12);
  assert.equal(model.concurrent(self, [{ model: "vgg16", part: 40, batch: 4 }], 1), pair + overhead);
});
