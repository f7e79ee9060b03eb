/**
 * One gpu-let process serving several functions (`src/runtime/worker.ts`, `worker_main.ts`,
 * `function_worker.ts`): both functions load in one process, each answers its own batches while they take
 * turns round-robin, and neither can read the other's folder although the process holds both.
 */
import assert from "node:assert/strict";
import { DEFAULT_MODELS_DIR, ensureModels } from "../../src/models/zoo.ts";
import type { FunctionConfig } from "../../src/runtime/protocol.ts";
import { type FunctionExecutor, GpuletProcess } from "../../src/runtime/worker.ts";
import { processAlive, ROOT, testImage } from "../helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A function folder copied into a temporary state folder, as a deploy would write it. */
async function functionAt(state: string, name: string, from: string, maxBatch: number): Promise<FunctionConfig> {
  const dir = `${state}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(`${from}/function.ts`, `${dir}/function.ts`);
  const def = await Deno.readTextFile(`${dir}/function.ts`);
  const sloMs = Number(/sloMs: ([0-9_]+)/.exec(def)![1].replaceAll("_", ""));
  return {
    name,
    functionDir: dir,
    functionFile: `${dir}/function.ts`,
    modelFile: `${DEFAULT_MODELS_DIR}/lenet.onnx`,
    warmBatches: [1],
    manifest: { name, model: "lenet", sloMs, maxBatch, json: true },
  };
}

/** Runs one batch of JSON bodies on `exec`; the answers as parsed JSON or `status: error`. */
async function runJson(exec: FunctionExecutor, bodies: unknown[]): Promise<unknown[]> {
  const parts = bodies.map((b) => encoder.encode(JSON.stringify(b)));
  let offset = 0;
  const items = parts.map((p, id) => {
    const item = { id, kind: "json" as const, body: { offset, bytes: p.byteLength } };
    offset += p.byteLength;
    return item;
  });
  const result = await exec.run(items, parts);
  try {
    return result.items.map((r) =>
      r.ok && "json" in r
        ? JSON.parse(decoder.decode(result.body.subarray(r.json.offset, r.json.offset + r.json.bytes)))
        : `${(r as { status: number }).status}: ${(r as { error: string }).error}`
    );
  } finally {
    result.release?.();
  }
}

Deno.test("a gpu-let process serves two functions in turns, each in its own sandbox", async () => {
  await ensureModels(["lenet"]);
  const state = await Deno.makeTempDir({ prefix: "gpulet-shared-" });
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-rt-" });
  const lenet = await functionAt(state, "lenet", `${ROOT}/functions/lenet`, 32);
  const escape = await functionAt(state, "escape", `${ROOT}/tests/fixtures/functions/escape`, 1);
  const gpulet = await GpuletProcess.start({ id: "shared", functions: [lenet, escape], threads: 1, runtimeDir });
  try {
    assert.equal(gpulet.executors.length, 2);
    const [lenetExec, escapeExec] = gpulet.executors;
    assert.ok(gpulet.pid > 0 && lenetExec.pid === gpulet.pid && escapeExec.pid === gpulet.pid, "one process");
    assert.ok(processAlive(gpulet.pid));

    // Batches of both, sent together, come back to their own function.
    const [digits, refused, ownRead] = await Promise.all([
      runJson(lenetExec, [{ image: testImage(1) }, { image: testImage(2) }]),
      runJson(escapeExec, [{ attempt: "read", path: lenet.functionFile }]),
      runJson(escapeExec, [{ attempt: "read", path: escape.functionFile }]),
    ]);
    for (const d of digits as { label: number }[]) assert.ok(Number.isInteger(d.label), JSON.stringify(d));
    // The process may read both folders; the escape function's isolate only its own.
    assert.match(String(refused[0]), /^400: preprocess rejected the input: .*Requires read access/);
    assert.deepEqual(ownRead[0], { escaped: true, attempt: "read" });
    const paths: Record<string, string> = { net: "http://127.0.0.1:8080/", write: lenet.functionFile };
    for (const attempt of ["net", "env", "run", "write"]) {
      const [r] = await runJson(escapeExec, [{ attempt, path: paths[attempt] ?? "" }]);
      assert.match(String(r), new RegExp(`Requires ${attempt} access`), `${attempt}: ${r}`);
    }
    assert.equal((await runJson(lenetExec, [{ image: testImage(3) }])).length, 1, "lenet still serves");

    // Stopping one function leaves the process serving the other; the last one stops the process.
    await escapeExec.stop();
    assert.ok(escapeExec.stopping && !lenetExec.stopping && processAlive(gpulet.pid));
    assert.equal((await runJson(lenetExec, [{ image: testImage(4) }])).length, 1);
    await lenetExec.stop();
    const status = await gpulet.exited;
    assert.equal(status.code, 0);
  } finally {
    gpulet.kill();
    await gpulet.exited;
    await Deno.remove(state, { recursive: true });
    await Deno.remove(runtimeDir, { recursive: true });
  }
});

Deno.test("a function whose code calls Deno.exit takes its gpu-let process down with that code", async () => {
  await ensureModels(["lenet"]);
  const state = await Deno.makeTempDir({ prefix: "gpulet-shared-" });
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-rt-" });
  const lenet = await functionAt(state, "lenet", `${ROOT}/functions/lenet`, 32);
  const exits = { ...lenet, name: "exits", functionDir: `${state}/exits`, functionFile: `${state}/exits/function.ts` };
  await Deno.mkdir(exits.functionDir);
  await Deno.writeTextFile(
    exits.functionFile,
    `import { defineFunction, tensor, z } from "gpulet";\n` +
      `export default defineFunction({ model: "lenet", sloMs: 1000, maxBatch: 32, input: z.object({ x: z.number() }),\n` +
      `  preprocess: ({ x }) => { if (x === 7) Deno.exit(7); return { input: tensor("float32", new Float32Array(784), [1, 1, 28, 28]) }; },\n` +
      `  postprocess: () => ({ ok: true }) });\n`,
  );
  exits.manifest = { ...lenet.manifest, name: "exits", sloMs: 1000 };
  const gpulet = await GpuletProcess.start({ id: "exits", functions: [lenet, exits], threads: 1, runtimeDir });
  try {
    const [lenetExec, exitsExec] = gpulet.executors;
    assert.deepEqual(await runJson(exitsExec, [{ x: 1 }]), [{ ok: true }]);
    const pending = runJson(lenetExec, [{ image: testImage(1) }]);
    await assert.rejects(runJson(exitsExec, [{ x: 7 }]), /died|closed/);
    await pending.catch(() => {}); // answered before, or failed with the process: either way not hung
    const status = await gpulet.exited;
    assert.equal(status.code, 7);
    assert.ok(!gpulet.stopping, "an exit nobody asked for is a crash (the controller restarts the gpu-let)");
  } finally {
    gpulet.kill();
    await gpulet.exited;
    await Deno.remove(state, { recursive: true });
    await Deno.remove(runtimeDir, { recursive: true });
  }
});

Deno.test("a time-shared gpu-let takes turns round-robin: a batch of one function goes between two of the other", async () => {
  await ensureModels(["lenet"]);
  const state = await Deno.makeTempDir({ prefix: "gpulet-shared-" });
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-rt-" });
  const a = await functionAt(state, "a", `${ROOT}/tests/fixtures/functions/slow`, 1);
  const b = await functionAt(state, "b", `${ROOT}/tests/fixtures/functions/slow`, 1);
  const gpulet = await GpuletProcess.start({ id: "turns", functions: [a, b], threads: 1, runtimeDir });
  try {
    const [execA, execB] = gpulet.executors;
    const done: string[] = [];
    const run = (exec: FunctionExecutor, label: string) =>
      runJson(exec, [{ delayMs: 40, value: 1 }]).then(() => done.push(label));
    // Sent in this order, all before the first finishes: A1 A2 A3, then B1.
    await Promise.all([run(execA, "a1"), run(execA, "a2"), run(execA, "a3"), run(execB, "b1")]);
    // In arrival order B1 would come last; in turns it follows A1.
    assert.deepEqual(done, ["a1", "b1", "a2", "a3"]);
  } finally {
    gpulet.kill();
    await gpulet.exited;
    await Deno.remove(state, { recursive: true });
    await Deno.remove(runtimeDir, { recursive: true });
  }
});

Deno.test("a function that forges another batch's answer in a time-shared gpu-let ends it; its neighbour is never answered by it", async () => {
  await ensureModels(["lenet"]);
  const state = await Deno.makeTempDir({ prefix: "gpulet-shared-" });
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-rt-" });
  const lenet = await functionAt(state, "lenet", `${ROOT}/functions/lenet`, 32);
  const dir = `${state}/forger`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    `${dir}/function.ts`,
    `import { defineFunction, tensor, z } from "gpulet";\n` +
      `export default defineFunction({ model: "lenet", sloMs: 1000, maxBatch: 32, input: z.object({ x: z.number() }),\n` +
      `  preprocess: ({ x }) => {\n` +
      `    // An answer for every batch id near this one, with no items: the neighbour's batch among them.\n` +
      `    if (x === 1) for (let id = 1; id < 10; id++) (self as unknown as Worker).postMessage({ type: "result",\n` +
      `      header: { type: "result", batchId: id, items: [], rows: 0, computeMs: 0, workerMs: 0 }, body: new Uint8Array(0) });\n` +
      `    return { input: tensor("float32", new Float32Array(784), [1, 1, 28, 28]) };\n` +
      `  },\n` +
      `  postprocess: () => ({ ok: true }) });\n`,
  );
  const forger = {
    ...lenet,
    name: "forger",
    functionDir: dir,
    functionFile: `${dir}/function.ts`,
    manifest: { ...lenet.manifest, name: "forger", sloMs: 1000 },
  };
  const gpulet = await GpuletProcess.start({ id: "forge", functions: [lenet, forger], threads: 1, runtimeDir });
  try {
    const [lenetExec, forgerExec] = gpulet.executors;
    const neighbour = runJson(lenetExec, [{ image: testImage(1) }]).then((a) => a, (e) => e as Error);
    await assert.rejects(runJson(forgerExec, [{ x: 1 }]), /died|closed/);
    const answer = await neighbour;
    // Answered by lenet before the forger ran, or failed with the gpu-let: never an empty forged answer.
    if (!(answer instanceof Error)) assert.equal((answer as { label: number }[]).length, 1);
    assert.equal((await gpulet.exited).code, 1);
  } finally {
    gpulet.kill();
    await gpulet.exited;
    await Deno.remove(state, { recursive: true });
    await Deno.remove(runtimeDir, { recursive: true });
  }
});
