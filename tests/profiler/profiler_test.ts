/**
 * The profiler on this machine's CPU device: real workers, a real (small) profile and pairs file, resumable.
 */
import assert from "node:assert/strict";
import { LatencyModel, PROFILE_COLUMNS } from "../../src/planner/latency_model.ts";
import { parseCsv } from "../../src/planner/csv.ts";
import { PAIR_COLUMNS } from "../../src/planner/pairs.ts";
import { DEFAULT_MODELS_DIR, ensureModels } from "../../src/models/zoo.ts";
import {
  coresForPart,
  cpuParts,
  formatDuration,
  median,
  profileLatency,
  profilePairs,
} from "../../src/profiler/profiler.ts";
import { onlineCpuCount } from "../../src/runtime/cpu_device.ts";

Deno.test("CPU parts map to core sets from the top core down", () => {
  assert.deepEqual(cpuParts(2), [50, 100]);
  assert.deepEqual(cpuParts(4), [25, 50, 75, 100]);
  assert.deepEqual(coresForPart(50, 2), [1]);
  assert.deepEqual(coresForPart(100, 2), [0, 1]);
  assert.deepEqual(coresForPart(50, 8), [4, 5, 6, 7]);
  assert.throws(() => coresForPart(10, 2), /not a whole number of 2 cores/);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(3720), "1h02m");
});

Deno.test("profileLatency measures with real workers, writes a valid profile and resumes", async () => {
  await ensureModels(["lenet"], DEFAULT_MODELS_DIR);
  const dir = await Deno.makeTempDir({ prefix: "gpulet-prof-" });
  const outFile = `${dir}/cpu.csv`;
  const lines: string[] = [];
  const coreCount = onlineCpuCount();
  const opts = {
    models: ["lenet"],
    parts: cpuParts(coreCount),
    batches: [1, 4],
    reps: 3,
    maxPointSeconds: 5,
    coreCount,
    modelFile: (m: string) => `${DEFAULT_MODELS_DIR}/${m}.onnx`,
    cost: () => 1e6,
    runtimeDir: dir,
    outFile,
    progress: (l: string) => lines.push(l),
  };
  try {
    const rows = await profileLatency(opts);
    assert.equal(rows.length, 2 * cpuParts(coreCount).length);
    assert.ok(lines.some((l) => /lenet part \d+ % \(cores [\d,]+\) batch 4: [\d.]+ ms \(median of 3\).*left/.test(l)));
    const model = LatencyModel.parse(await Deno.readTextFile(outFile), outFile);
    assert.ok(model.latency("lenet", cpuParts(coreCount)[0], 2) > 0);
    // Drop one point: a rerun measures only that one.
    const text = (await Deno.readTextFile(outFile)).trim().split("\n");
    await Deno.writeTextFile(outFile, text.slice(0, -1).join("\n") + "\n");
    lines.length = 0;
    const again = await profileLatency(opts);
    assert.equal(again.length, rows.length);
    assert.ok(lines[0].startsWith(`resuming: ${rows.length - 1} points`), lines[0]);
    assert.equal(lines.filter((l) => /^\[\d+\/1\]/.test(l)).length, 1);
    assert.equal(parseCsv(await Deno.readTextFile(outFile), outFile, PROFILE_COLUMNS).length, rows.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "profilePairs runs two pinned gpu-lets side by side and alone, in the pairs format",
  ignore: onlineCpuCount() < 2,
  fn: async () => {
    await ensureModels(["lenet"], DEFAULT_MODELS_DIR);
    const dir = await Deno.makeTempDir({ prefix: "gpulet-pairs-" });
    try {
      const rows = await profilePairs({
        models: ["lenet"],
        batch: 4,
        seconds: 0.3,
        coreCount: onlineCpuCount(),
        modelFile: (m) => `${DEFAULT_MODELS_DIR}/${m}.onnx`,
        runtimeDir: dir,
        outFile: `${dir}/pairs.csv`,
        progress: () => {},
      });
      assert.equal(rows.length, 1);
      const [r] = parseCsv(await Deno.readTextFile(`${dir}/pairs.csv`), "pairs.csv", PAIR_COLUMNS);
      assert.equal(r.model_a, "lenet");
      assert.equal(r.part_a + r.part_b, 100);
      assert.ok(r.alone_a_ms > 0 && r.together_a_ms > 0 && r.alone_b_ms > 0 && r.together_b_ms > 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
