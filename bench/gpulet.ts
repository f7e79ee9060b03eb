/**
 * The cost of one process per gpu-let: the round trip of a one-row lenet batch (controller → gpu-let process
 * → answer) for a gpu-let of one function, which runs it in the process itself, and for a time-shared gpu-let
 * of two, whose functions run in Web Workers of their own (two more message hops a batch). The two arms
 * alternate in rounds, so the VM's drift falls on both alike; the gpu-let is pinned to core 1.
 */
import { DEFAULT_MODELS_DIR, ensureModels } from "../src/models/zoo.ts";
import type { FunctionConfig, RunItem } from "../src/runtime/protocol.ts";
import { type FunctionExecutor, GpuletProcess } from "../src/runtime/worker.ts";
import { percentile } from "../src/loadgen/stats.ts";

export interface GpuletHopResult {
  batchesPerArm: number;
  /** Median round trip (ms) and time inside the function's isolate (ms), per arm. */
  alone: { roundTripMs: number; workerMs: number };
  shared: { roundTripMs: number; workerMs: number };
}

/** Batches per round and arm, and rounds. */
const BATCHES = 500;
const ROUNDS = 6;

async function tensorFunction(dir: string, name: string): Promise<FunctionConfig> {
  await Deno.mkdir(`${dir}/${name}`, { recursive: true });
  const functionFile = `${dir}/${name}/function.ts`;
  await Deno.writeTextFile(
    functionFile,
    `import { defineFunction } from "gpulet";\nexport default defineFunction({ model: "lenet", sloMs: 100, maxBatch: 32 });\n`,
  );
  return {
    name,
    functionDir: `${dir}/${name}`,
    functionFile,
    modelFile: `${DEFAULT_MODELS_DIR}/lenet.onnx`,
    warmBatches: [1],
    manifest: { name, model: "lenet", sloMs: 100, maxBatch: 32, json: false },
  };
}

/** `n` sequential one-row batches on `exec`: round trips and worker times (ms). */
async function runBatches(exec: FunctionExecutor, n: number, into: { rt: number[]; worker: number[] }) {
  const body = [new Uint8Array(784 * 4)];
  const items: RunItem[] = [{
    id: 0,
    kind: "tensors",
    inputs: [{ name: "input", type: "float32", shape: [1, 1, 28, 28], offset: 0, bytes: 784 * 4 }],
  }];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await exec.run(items, body);
    into.rt.push(performance.now() - t0);
    into.worker.push(r.workerMs);
    r.release?.();
  }
}

const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 0.5) ?? NaN;

/** Measures both arms; `progress` gets a line per round. */
export async function measureGpuletHop(progress: (line: string) => void): Promise<GpuletHopResult> {
  await ensureModels(["lenet"], DEFAULT_MODELS_DIR, progress);
  const dir = await Deno.makeTempDir({ prefix: "gpulet-bench-hop-" });
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-rt-" });
  const [a, b, c] = await Promise.all(["a", "b", "c"].map((n) => tensorFunction(dir, n)));
  const spec = { threads: 1, runtimeDir, cores: [1] };
  const alone = await GpuletProcess.start({ id: "alone", functions: [a], ...spec });
  const shared = await GpuletProcess.start({ id: "shared", functions: [b, c], ...spec });
  const arms = { alone: { rt: [] as number[], worker: [] as number[] }, shared: { rt: [], worker: [] } };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      await runBatches(alone.executors[0], BATCHES, arms.alone);
      await runBatches(shared.executors[0], BATCHES, arms.shared);
      progress(`gpu-let round trip: round ${round}/${ROUNDS}`);
    }
  } finally {
    await Promise.all([alone.stop(), shared.stop()]);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(runtimeDir, { recursive: true });
  }
  // The first round warms both paths up.
  const summary = (x: { rt: number[]; worker: number[] }) => ({
    roundTripMs: median(x.rt.slice(BATCHES)),
    workerMs: median(x.worker.slice(BATCHES)),
  });
  return { batchesPerArm: BATCHES * (ROUNDS - 1), alone: summary(arms.alone), shared: summary(arms.shared) };
}

/** The result as Markdown. */
export function gpuletHopMarkdown(r: GpuletHopResult, command: string): string {
  const f = (x: number) => x.toFixed(3);
  return [
    `# Gpu-let process: round trip of a batch`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}). One-row lenet batches, one at a time, ${r.batchesPerArm}`,
    `per arm after a warm-up round, the arms alternating; each gpu-let process pinned to core 1. Median ms.`,
    ``,
    `| gpu-let | round trip | inside the function's isolate | the rest (socket, framing, hops) |`,
    `|---|---|---|---|`,
    `| one function (run in the process) | ${f(r.alone.roundTripMs)} | ${f(r.alone.workerMs)} | ${
      f(r.alone.roundTripMs - r.alone.workerMs)
    } |`,
    `| two functions, time-shared (each in a Web Worker) | ${f(r.shared.roundTripMs)} | ${f(r.shared.workerMs)} | ${
      f(r.shared.roundTripMs - r.shared.workerMs)
    } |`,
    ``,
    `Ratio time-shared / alone: **${(r.shared.roundTripMs / r.alone.roundTripMs).toFixed(2)}**.`,
    ``,
  ].join("\n");
}
