import assert from "node:assert/strict";
import { CsvError, formatCsv, parseCsv } from "../../src/planner/csv.ts";
import { PROFILE_COLUMNS } from "../../src/planner/latency_model.ts";

const bad = (text: string, pattern: RegExp) =>
  assert.throws(
    () => parseCsv(text, "p.csv", PROFILE_COLUMNS),
    (e) => e instanceof CsvError && pattern.test(e.message),
  );

Deno.test("CSV: typed rows with their line numbers; extra columns and blank lines are ignored", () => {
  const rows = parseCsv(
    "model,part,batch,latency_ms,note\nresnet50,50,8,2.6,x\n\nvgg16,100,1,0.9,y\n",
    "p.csv",
    PROFILE_COLUMNS,
  );
  assert.deepEqual(rows, [
    { line: 2, model: "resnet50", part: 50, batch: 8, latency_ms: 2.6 },
    { line: 4, model: "vgg16", part: 100, batch: 1, latency_ms: 0.9 },
  ]);
});

Deno.test("CSV: bad files fail with the file, line and column", () => {
  bad("", /^p\.csv:1: empty file/);
  bad("model,part,batch\nresnet50,50,8\n", /^p\.csv:1: missing column "latency_ms"/);
  bad("model,part,batch,latency_ms\nresnet50,50,8,abc\n", /^p\.csv:2:4: latency_ms "abc" is not a number/);
  bad("model,part,batch,latency_ms\nresnet50,50,8,1\nresnet50,50,16,-2\n", /^p\.csv:3:4: latency_ms -2 must be > 0/);
  bad("model,part,batch,latency_ms\nresnet50,150,8,1\n", /^p\.csv:2:2: part 150 is above 100/);
  bad("model,part,batch,latency_ms\nresnet50,50,8.5,1\n", /^p\.csv:2:3: batch 8\.5 is not an integer/);
  bad("model,part,batch,latency_ms\nResNet,50,8,1\n", /^p\.csv:2:1: model "ResNet" is not a model name/);
  bad("model,part,batch,latency_ms\nresnet50,50\n", /^p\.csv:2:3: missing value for batch/);
  bad('model,part,batch,latency_ms\n"resnet50,50,8,1\n', /^p\.csv:\d+: malformed CSV/);
});

Deno.test("CSV: formatCsv writes a header and rows that parse back", () => {
  const text = formatCsv([{ model: "a_1", part: 30, batch: 4, latency_ms: 1.25, extra: 9 }], [
    "model",
    "part",
    "batch",
    "latency_ms",
  ]);
  assert.equal(text, "model,part,batch,latency_ms\na_1,30,4,1.25\n");
  assert.equal(parseCsv(text, "x", PROFILE_COLUMNS)[0].latency_ms, 1.25);
});
