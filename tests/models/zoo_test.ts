/**
 * The model zoo: architectures match their published parameter and MAC counts, generated graphs load in
 * onnxruntime with a symbolic batch dimension, and building is idempotent.
 */
import assert from "node:assert/strict";
import ort from "onnxruntime-node";
import { bert, BERT_BASE } from "../../src/models/bert.ts";
import { architectureReport, ensureModels, ZOO } from "../../src/models/zoo.ts";

/** Reference figures (torchvision model cards; BERT-base with embeddings and pooler). */
const REFERENCE: Record<string, { params: number; macs?: number }> = {
  googlenet: { params: 6.62e6, macs: 1.5e9 },
  resnet50: { params: 25.56e6, macs: 4.1e9 },
  vgg16: { params: 138.4e6, macs: 15.5e9 },
  mobilenet_v2: { params: 3.5e6, macs: 0.3e9 },
  mnasnet1_0: { params: 4.38e6, macs: 0.31e9 },
  densenet161: { params: 28.7e6, macs: 7.7e9 },
  bert: { params: 109.5e6 },
};

Deno.test("every zoo architecture is within 1.5 % of its reference parameters and MACs per sample", () => {
  for (const [name, ref] of Object.entries(REFERENCE)) {
    const r = architectureReport(name);
    const paramErr = Math.abs(r.params - ref.params) / ref.params;
    assert.ok(paramErr <= 0.015, `${name}: ${r.params} params vs ${ref.params} (${(paramErr * 100).toFixed(2)} %)`);
    if (ref.macs !== undefined) {
      const macErr = Math.abs(r.macs! - ref.macs) / ref.macs;
      assert.ok(macErr <= 0.015, `${name}: ${r.macs} MACs vs ${ref.macs} (${(macErr * 100).toFixed(2)} %)`);
    }
  }
  assert.equal(architectureReport("lenet").params, 61_706);
  assert.equal(architectureReport("lenet").macs, 416_520);
});

async function runTwoBatches(bytes: Uint8Array, input: { name: string; make: (n: number) => ort.Tensor }) {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const outs = [];
    for (const n of [1, 3]) {
      const out = Object.values(await session.run({ [input.name]: input.make(n) }))[0];
      assert.ok((out.data as Float32Array).every(Number.isFinite), "finite outputs");
      outs.push(out.dims);
    }
    return outs;
  } finally {
    await session.release();
  }
}

Deno.test("small generated image models load and run at batch 1 and 3", async () => {
  const image = (n: number) =>
    new ort.Tensor("float32", Float32Array.from({ length: n * 3 * 224 * 224 }, (_, i) => (i % 251) / 251), [
      n,
      3,
      224,
      224,
    ]);
  for (const name of ["mobilenet_v2", "mnasnet1_0", "googlenet"]) {
    const entry = ZOO[name];
    assert.equal(entry.kind, "generated");
    if (entry.kind !== "generated") continue;
    const dims = await runTwoBatches(entry.build().graph.encode(name), { name: "input", make: image });
    assert.deepEqual(dims, [[1, 1000], [3, 1000]], name);
  }
});

Deno.test("the BERT graph (a 2-layer narrow copy of its structure) runs on int64 token ids", async () => {
  const shape = { ...BERT_BASE, layers: 2, hidden: 64, heads: 4, intermediate: 128, vocab: 100, sequence: 16 };
  const { g } = bert(false, shape);
  const ids = (n: number) =>
    new ort.Tensor("int64", BigInt64Array.from({ length: n * 16 }, (_, i) => BigInt((i * 7) % 100)), [n, 16]);
  const dims = await runTwoBatches(g.encode("bert_small"), { name: "input_ids", make: ids });
  assert.deepEqual(dims, [[1, 64], [3, 64]]);
});

Deno.test("ensureModels is idempotent and rebuilds a model whose file was damaged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gpulet-zoo-" });
  try {
    const lines: string[] = [];
    assert.deepEqual(await ensureModels(["lenet"], dir, (l) => lines.push(l)), ["lenet"]);
    assert.ok(lines.some((l) => /lenet: .* MB, 0\.06 M params/.test(l)), lines.join("\n"));
    assert.deepEqual(await ensureModels(["lenet"], dir), []);
    await Deno.writeFile(`${dir}/lenet.onnx`, new Uint8Array(10));
    assert.deepEqual(await ensureModels(["lenet"], dir), ["lenet"]);
    await assert.rejects(ensureModels(["nope"], dir), /unknown zoo model "nope"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
