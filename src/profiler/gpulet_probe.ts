/**
 * A gpu-let started only to be measured: the same worker subprocess, sandbox, pinning and session options that
 * serve traffic, running a tensors-only function over one zoo model, fed zero batches of any size.
 */
import type { WireTensor } from "../runtime/protocol.ts";
import { elementCount, zeroByteLength } from "../functions/tensor.ts";
import { type FunctionExecutor, GpuletProcess } from "../runtime/worker.ts";

/** A running probe gpu-let. */
export class GpuletProbe {
  /** Zero request bodies per batch size, made once (fresh large buffers are slow to touch). */
  private readonly bodies = new Map<number, { inputs: WireTensor[]; body: Uint8Array[] }>();

  private constructor(readonly worker: FunctionExecutor, private readonly dir: string) {}

  /** Starts a worker for `model` (file `modelFile`) pinned to `cores`, warmed at `warmBatch`. */
  static async start(opts: {
    model: string;
    modelFile: string;
    cores: number[];
    /** A GPU share (CUDA): the worker's environment places it, and it runs on CUDA device 0. */
    env?: Record<string, string>;
    cuda?: boolean;
    label?: string;
    runtimeDir: string;
    warmBatch: number;
    maxBatch: number;
  }): Promise<GpuletProbe> {
    const dir = await Deno.makeTempDir({ prefix: `gpulet-probe-${opts.model}-` });
    const manifest = {
      name: opts.model.replaceAll("_", "-"),
      model: opts.model,
      sloMs: 600_000,
      maxBatch: opts.maxBatch,
      json: false,
    };
    await Deno.writeTextFile(
      `${dir}/function.ts`,
      `import { defineFunction } from "gpulet";\nexport default defineFunction(${
        JSON.stringify({ model: manifest.model, sloMs: manifest.sloMs, maxBatch: manifest.maxBatch })
      });\n`,
    );
    try {
      const gpulet = await GpuletProcess.start({
        id: `probe-${manifest.name}-${opts.cores.join("_") || opts.env?.CUDA_MPS_ACTIVE_THREAD_PERCENTAGE}`,
        runtimeDir: opts.runtimeDir,
        cores: opts.cores,
        env: opts.env,
        threads: Math.max(1, opts.cores.length),
        cuda: opts.cuda,
        functions: [{
          name: manifest.name,
          functionDir: dir,
          functionFile: `${dir}/function.ts`,
          modelFile: opts.modelFile,
          warmBatches: [opts.warmBatch],
          manifest,
        }],
      });
      return new GpuletProbe(gpulet.executors[0], dir);
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /** Runs one zero batch of `batch` rows; returns the time inside onnxruntime (ms). */
  async run(batch: number): Promise<number> {
    const { inputs, body } = this.zeroBatch(batch);
    const result = await this.worker.run([{ id: 0, kind: "tensors", inputs }], body);
    result.release?.(); // only the timings are read
    const item = result.items[0];
    if (!item.ok) throw new Error(`probe run failed: ${item.error}`);
    return result.computeMs;
  }

  private zeroBatch(batch: number): { inputs: WireTensor[]; body: Uint8Array[] } {
    let made = this.bodies.get(batch);
    if (made) return made;
    made = { inputs: [], body: [] };
    let offset = 0;
    for (const spec of this.worker.model.inputs) {
      const shape = [batch, ...spec.shape.slice(1)];
      if (shape.some((d) => d < 0)) throw new Error(`input ${spec.name} has a dynamic non-batch dimension`);
      const bytes = zeroByteLength(spec.type, elementCount(shape));
      const padded = bytes + ((8 - (bytes % 8)) % 8);
      made.inputs.push({ name: spec.name, type: spec.type, shape, offset, bytes });
      made.body.push(new Uint8Array(padded));
      offset += padded;
    }
    this.bodies.set(batch, made);
    return made;
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
