/**
 * One function in a gpu-let process, whichever isolate it runs in: import and validate its code, load its
 * model into onnxruntime, warm it up, run its batches (JSON bodies through the function's own
 * preprocess/postprocess, or raw tensors). A gpu-let of one function runs it in the process itself; a
 * time-shared one runs each function in a Web Worker of its own (`function_worker.ts`).
 */
import ort from "onnxruntime-node";
// Preloaded so function code can import them without read access to the project (see DESIGN.md).
import "zod";
import "../functions/vision.ts";
import "../functions/ocr.ts";
import { type FunctionDefinition, isDefinedFunction, type Tensors } from "../functions/sdk.ts";
import { describeZodError } from "../functions/manifest.ts";
import { encodeAnswer, ItemError, parseItemJson, tensorsToWire, wireToTensors } from "./item_codec.ts";
import { ModelExecutor, modelInfo } from "./ort_executor.ts";
import type {
  FatalMessage,
  FunctionConfig,
  FunctionReady,
  ItemResult,
  ModelInfo,
  ResultMessage,
  RunItem,
  RunMessage,
} from "./protocol.ts";
import { elementCount, type Tensor, zeroData } from "../functions/tensor.ts";

/** An error's message. */
export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function handleRun(
  msg: RunMessage,
  body: Uint8Array,
  def: FunctionDefinition,
  exec: ModelExecutor,
): Promise<{ header: ResultMessage; parts: Uint8Array[] }> {
  const t0 = performance.now();
  exec.computeMs = 0;
  const results: ItemResult[] = new Array(msg.items.length);
  const jsonIdx: number[] = [];
  const jsonInputs: unknown[] = [];
  const jsonTensors: Tensors[] = [];
  const rawIdx: number[] = [];
  const rawTensors: Tensors[] = [];
  let rows = 0;

  for (const [i, item] of msg.items.entries() as IterableIterator<[number, RunItem]>) {
    try {
      if (item.kind === "json") {
        if (!def.input || !def.preprocess) throw new ItemError(400, "this function takes tensors only");
        const parsed = def.input.safeParse(parseItemJson(body, item.body));
        if (!parsed.success) throw new ItemError(400, `invalid input: ${describeZodError(parsed.error)}`);
        let tensors: Tensors;
        try {
          tensors = await def.preprocess(parsed.data);
        } catch (e) {
          throw new ItemError(400, `preprocess rejected the input: ${describe(e)}`);
        }
        rows += def.execute ? 1 : exec.check(tensors, exec.info.batchable);
        jsonIdx.push(i);
        jsonInputs.push(parsed.data);
        jsonTensors.push(tensors);
      } else {
        const tensors = wireToTensors(item.inputs, body);
        rows += exec.check(tensors, exec.info.batchable);
        rawIdx.push(i);
        rawTensors.push(tensors);
      }
    } catch (e) {
      results[i] = e instanceof ItemError
        ? { id: item.id, ok: false, status: e.status, error: e.message }
        : { id: item.id, ok: false, status: 500, error: describe(e) };
    }
  }

  const parts: Uint8Array[] = [];
  const offset = { n: 0 };
  const failAll = (idx: number[], e: unknown) => {
    for (const i of idx) {
      results[i] = e instanceof ItemError
        ? { id: msg.items[i].id, ok: false, status: e.status, error: e.message }
        : { id: msg.items[i].id, ok: false, status: 500, error: `model run failed: ${describe(e)}` };
    }
  };

  if (jsonTensors.length) {
    try {
      const outs = def.execute ? await def.execute(jsonTensors, exec.runner) : await exec.stacked(jsonTensors);
      for (const [k, i] of jsonIdx.entries()) {
        try {
          const answer = encodeAnswer(await def.postprocess!(outs[k], jsonInputs[k]));
          results[i] = { id: msg.items[i].id, ok: true, json: { offset: offset.n, bytes: answer.byteLength } };
          parts.push(answer);
          offset.n += answer.byteLength;
        } catch (e) {
          results[i] = { id: msg.items[i].id, ok: false, status: 500, error: `postprocess failed: ${describe(e)}` };
        }
      }
    } catch (e) {
      failAll(jsonIdx, e);
    }
  }
  if (rawTensors.length) {
    try {
      const outs = await exec.stacked(rawTensors);
      for (const [k, i] of rawIdx.entries()) {
        results[i] = { id: msg.items[i].id, ok: true, outputs: tensorsToWire(outs[k], parts, offset) };
      }
    } catch (e) {
      failAll(rawIdx, e);
    }
  }
  return {
    header: {
      type: "result",
      batchId: msg.batchId,
      items: results,
      rows,
      computeMs: exec.computeMs,
      workerMs: performance.now() - t0,
    },
    parts,
  };
}

/**
 * Where the session runs. CPU: no spinning between requests (it would burn a whole core; DESIGN.md, measured
 * facts). CUDA: device 0 of the GPU the controller gave this process, and no silent CPU fallback for nodes
 * the CUDA provider cannot take (session creation fails instead).
 */
function sessionPlacement(cuda: boolean) {
  if (cuda) {
    return {
      executionProviders: [{ name: "cuda" as const, deviceId: 0 }],
      extra: { session: { disable_cpu_ep_fallback: "1" } },
    };
  }
  return { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } };
}

/** Zero tensors for a warm-up run at `batch` rows, when every non-batch dimension is known. */
function zeroItem(info: ModelInfo, batch: number): Tensors | null {
  const item: Tensors = {};
  for (const spec of info.inputs) {
    if (spec.shape.slice(1).some((d) => d < 0) || spec.shape[0] !== -1) return null;
    const dims = [batch, ...spec.shape.slice(1)];
    item[spec.name] = { type: spec.type, dims, data: zeroData(spec.type, elementCount(dims)) } as Tensor;
  }
  return item;
}

async function warmUp(
  def: FunctionDefinition,
  exec: ModelExecutor,
  batches: number[],
): Promise<Record<string, number>> {
  const latency: Record<string, number> = {};
  for (const b of batches) {
    let once: () => Promise<unknown>;
    // Preprocessing runs once per request: it counts in the batch latency admission plans with.
    let preprocessMs = 0;
    if (def.example !== undefined && def.input && def.preprocess) {
      const parsed = def.input.parse(def.example);
      await def.preprocess(parsed);
      const tp = performance.now();
      const tensors = await def.preprocess(parsed);
      preprocessMs = performance.now() - tp;
      const items = Array.from({ length: b }, () => tensors);
      once = async () => {
        const outs = def.execute ? await def.execute(items, exec.runner) : await exec.stacked(items);
        await def.postprocess?.(outs[0], parsed);
      };
    } else {
      const item = zeroItem(exec.info, b);
      if (!item) {
        throw new Error("the model has dynamic non-batch dimensions: give the function an `example` input to warm up");
      }
      once = () => exec.stacked([item]);
    }
    await once();
    const t0 = performance.now();
    await once();
    latency[b] = performance.now() - t0 + b * preprocessMs;
  }
  return latency;
}

/** A function loaded and warm in this isolate: what runs its batches. */
export interface LoadedFunction {
  ready: FunctionReady;
  /** Runs one batch; the result's parts may be views of reusable buffers (copy or write them before the next). */
  run(msg: RunMessage, body: Uint8Array): Promise<{ header: ResultMessage; parts: Uint8Array[] }>;
}

/** Why a function could not be loaded, and at which stage. */
export class LoadError extends Error {
  constructor(readonly stage: FatalMessage["stage"], message: string) {
    super(message);
  }
}

/** Imports and validates a function, loads its model into onnxruntime and warms it up; throws a {@link LoadError}. */
export async function loadFunction(config: FunctionConfig, threads: number, cuda: boolean): Promise<LoadedFunction> {
  let stage: FatalMessage["stage"] = "import";
  try {
    const mod = await import(`file://${config.functionFile}`);
    stage = "validate";
    if (!isDefinedFunction(mod.default)) throw new Error("function.ts must default-export defineFunction({...})");
    const def = mod.default as FunctionDefinition;
    const m = config.manifest;
    if (def.model !== m.model || def.sloMs !== m.sloMs || (def.maxBatch ?? 32) !== m.maxBatch) {
      throw new Error("function.ts does not match the deployed manifest (model, sloMs, maxBatch)");
    }
    stage = "load";
    const session = await ort.InferenceSession.create(config.modelFile, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      ...sessionPlacement(cuda),
    });
    const exec = new ModelExecutor(session, modelInfo(session));
    stage = "warmup";
    const warmLatencyMs = await warmUp(def, exec, config.warmBatches);
    return {
      ready: { model: exec.info, warmLatencyMs },
      run: (msg, body) => handleRun(msg, body, def, exec),
    };
  } catch (e) {
    throw new LoadError(stage, describe(e));
  }
}
