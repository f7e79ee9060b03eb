/**
 * The "direct" arm of the overhead benchmark: onnxruntime-node in-process, same session options as a worker,
 * one model at one batch size, back to back for `seconds`. Prints one JSON line.
 * Usage (pinned by the caller): deno run -A bench/direct.ts MODEL_FILE BATCH SECONDS THREADS [LATENCY_ROWS=1]
 */
import ort from "onnxruntime-node";

const [modelFile, batchS, secondsS, threadsS, latencyRowsS = "1"] = Deno.args;
const batch = Number(batchS);
const latencyRows = Number(latencyRowsS);
const session = await ort.InferenceSession.create(modelFile, {
  intraOpNumThreads: Number(threadsS),
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
  extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
});
const meta = session.inputMetadata[0];
if (!meta.isTensor) throw new Error("the model's first input is not a tensor");
const dims = meta.shape.map((d, i) => (i === 0 ? batch : Number(d)));
const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => (i % 255) / 255);
const feeds = { [meta.name]: new ort.Tensor("float32", data, dims) };
for (let i = 0; i < 3; i++) await session.run(feeds);
// Latency at the rows of one request (for the added-latency comparison) and throughput at `batch`.
const one = {
  [meta.name]: new ort.Tensor("float32", data.subarray(0, (data.length / batch) * latencyRows), [
    latencyRows,
    ...dims.slice(1),
  ]),
};
const lat: number[] = [];
for (let i = 0; i < 200 && lat.reduce((a, b) => a + b, 0) < 3000; i++) {
  const t = performance.now();
  await session.run(one);
  lat.push(performance.now() - t);
}
lat.sort((a, b) => a - b);
let n = 0;
const t0 = performance.now();
while (performance.now() - t0 < Number(secondsS) * 1000) {
  await session.run(feeds);
  n++;
}
const elapsed = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({ itemsPerS: (n * batch) / elapsed, batches: n, p50RequestMs: lat[Math.floor(lat.length / 2)] }),
);
