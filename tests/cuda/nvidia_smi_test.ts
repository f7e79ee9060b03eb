import assert from "node:assert/strict";
import { gpuType, parseGpuList } from "../../src/cuda/nvidia_smi.ts";

Deno.test("parseGpuList reads the captured H100 line and the full index-first query", () => {
  // Captured on a real H100 host (no index column).
  assert.deepEqual(parseGpuList("NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled\n"), [
    {
      index: 0,
      name: "NVIDIA H100 80GB HBM3",
      memoryMiB: 81559,
      computeMode: "Default",
      migMode: "Disabled",
      type: "h100",
    },
  ]);
  const four = [
    "0, NVIDIA H100 80GB HBM3, 81559 MiB, Exclusive_Process, Disabled",
    "1, NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled",
    "",
    "2, NVIDIA A100-SXM4-40GB, 40960 MiB, Default, Enabled",
    "3, Tesla V100-SXM2-16GB, 16384 MiB, Default, [N/A]",
  ].join("\n");
  const gpus = parseGpuList(four);
  assert.deepEqual(gpus.map((g) => [g.index, g.type, g.memoryMiB, g.computeMode, g.migMode]), [
    [0, "h100", 81559, "Exclusive_Process", "Disabled"],
    [1, "h100", 81559, "Default", "Disabled"],
    [2, "a100", 40960, "Default", "Enabled"],
    [3, "v100", 16384, "Default", "[N/A]"],
  ]);
  assert.deepEqual(parseGpuList(""), []);
  assert.throws(() => parseGpuList("NVIDIA H100, lots, Default, Disabled"), /cannot read memory "lots"/);
  assert.throws(() => parseGpuList("garbage"), /expected "index, name, memory, compute mode, MIG mode", got "garbage"/);
});

Deno.test("gpuType names a GPU's profile; unknown names give none", () => {
  assert.equal(gpuType("NVIDIA H100 80GB HBM3"), "h100");
  assert.equal(gpuType("NVIDIA H100 PCIe"), "h100");
  assert.equal(gpuType("NVIDIA H200"), "h200"); // the shipped profiles/h200*.csv
  assert.equal(gpuType("NVIDIA A100-SXM4-80GB"), "a100");
  assert.equal(gpuType("NVIDIA L40S"), "l40");
  assert.equal(gpuType("Tesla T4"), "t4");
  assert.equal(gpuType("NVIDIA GeForce RTX 4090"), undefined);
});
