/**
 * The gpu-let worker process: imports one function, loads its model into onnxruntime, warms it up, then runs
 * the batches the controller sends over a Unix socket, one at a time.
 *
 * Started by the controller with the fewest Deno permissions that work: read of the function folder, the
 * model file and its socket; write and net only to that socket; ffi only to the onnxruntime binding.
 * No env, no run, no other net or write. Function code runs here, and only here.
 */
import ort from "onnxruntime-node";
// Preloaded so function code can import them without read access to the project (see DESIGN.md).
import "zod";
import "../functions/vision.ts";
import { type FunctionDefinition, isDefinedFunction, type ModelRunner, type Tensors } from "../functions/sdk.ts";
import { describeZodError } from "../functions/manifest.ts";
import { FrameReader, FrameWriter, padTo8 } from "./framing.ts";
import { BadJsonBody, parseJsonBytes } from "./json_body.ts";
import type {
  ByteRange,
  FatalMessage,
  ItemResult,
  ModelInfo,
  ReadyMessage,
  ResultMessage,
  RunItem,
  RunMessage,
  TensorSpec,
  WireTensor,
  WorkerConfig,
} from "./protocol.ts";
import { elementCount, isOrtType, type Tensor, type TensorData, TYPES } from "../functions/tensor.ts";

/** A failure that belongs to one request (bad input), not to the worker. */
class ItemError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Per-input reusable slabs: preallocated, touched once, grown only when a batch needs more. */
class Slabs {
  private readonly slabs = new Map<string, TensorData>();

  get(name: string, type: Tensor["type"], elements: number): TensorData {
    let s = this.slabs.get(name);
    if (!s || s.length < elements) {
      s = TYPES[type].alloc(Math.max(elements, s ? s.length * 2 : 0));
      this.slabs.set(name, s);
    }
    return s.subarray(0, elements) as TensorData;
  }
}

/**
 * An ort.Tensor over `data` without copying. FP16 needs care: onnxruntime-common turns float16 data into a
 * Float16Array, which Deno's N-API reports as 0 bytes ("not enough space"), so the tensor keeps a
 * Uint16Array view of the same bytes instead.
 */
function ortTensor(type: Tensor["type"], data: TensorData, dims: readonly number[]): ort.Tensor {
  if (type !== "float16") return new ort.Tensor(type, data as never, dims);
  const bits = new Uint16Array(data.buffer, data.byteOffset, data.length);
  const t = new ort.Tensor("float16", bits, dims);
  (t as unknown as { cpuData: Uint16Array }).cpuData = bits;
  return t;
}

function modelInfo(session: ort.InferenceSession): ModelInfo {
  const spec = (m: ort.InferenceSession.ValueMetadata): TensorSpec => {
    if (!m.isTensor || !isOrtType(m.type)) throw new Error(`model ${m.name}: unsupported value type`);
    return { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1)) };
  };
  const inputs = session.inputMetadata.map(spec);
  const outputs = session.outputMetadata.map(spec);
  const batchable = [...inputs, ...outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
  return { inputs, outputs, batchable };
}

/** Runs batches: concatenation into slabs, one ORT run, outputs split per item. */
class Executor {
  private readonly inSlabs = new Slabs();
  private readonly outSlabs = new Slabs();
  private readonly inputByName: Map<string, TensorSpec>;
  readonly runner: ModelRunner;
  /** Time spent inside onnxruntime since the last reset. */
  computeMs = 0;

  constructor(private readonly session: ort.InferenceSession, readonly info: ModelInfo) {
    this.inputByName = new Map(info.inputs.map((s) => [s.name, s]));
    this.runner = {
      inputNames: info.inputs.map((s) => s.name),
      outputNames: info.outputs.map((s) => s.name),
      run: (feeds) => this.run(feeds),
    };
  }

  /** One ORT run; outputs are copied out of ORT-owned memory only when the caller keeps them. */
  async run(feeds: Tensors, fetches?: Record<string, ort.Tensor>): Promise<Tensors> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = ortTensor(t.type, t.data, t.dims);
    const t0 = performance.now();
    const out = fetches ? await this.session.run(ortFeeds, fetches) : await this.session.run(ortFeeds);
    this.computeMs += performance.now() - t0;
    const result: Tensors = {};
    for (const [name, t] of Object.entries(out)) {
      result[name] = { type: t.type as Tensor["type"], dims: [...t.dims], data: t.data as TensorData };
    }
    return result;
  }

  /** Checks one item's tensors against the model signature; returns its row count. */
  check(item: Tensors, batchable: boolean): number {
    let rows = -1;
    for (const spec of this.info.inputs) {
      if (!(spec.name in item)) throw new ItemError(400, `missing input "${spec.name}"`);
    }
    for (const [name, t] of Object.entries(item)) {
      const spec = this.inputByName.get(name);
      if (!spec) throw new ItemError(400, `unknown input "${name}"`);
      if (t.type !== spec.type) throw new ItemError(400, `input "${name}": type ${t.type}, model expects ${spec.type}`);
      if (t.dims.length !== spec.shape.length) {
        throw new ItemError(400, `input "${name}": rank ${t.dims.length}, model expects ${spec.shape.length}`);
      }
      spec.shape.forEach((d, i) => {
        if (d !== -1 && d !== t.dims[i]) {
          throw new ItemError(400, `input "${name}": dimension ${i} is ${t.dims[i]}, model expects ${d}`);
        }
      });
      if (elementCount(t.dims) !== t.data.length) {
        throw new ItemError(400, `input "${name}": shape ${JSON.stringify(t.dims)} does not match its data`);
      }
      if (batchable) {
        if (rows === -1) rows = t.dims[0];
        else if (rows !== t.dims[0]) throw new ItemError(400, `inputs disagree on the batch dimension`);
      }
    }
    return Math.max(rows, 1);
  }

  /** The default execution: stack items on dimension 0, one run, split. Non-batchable models run per item. */
  async stacked(items: Tensors[]): Promise<Tensors[]> {
    if (items.length === 0) return [];
    if (!this.info.batchable) {
      const outs: Tensors[] = [];
      for (const item of items) outs.push(copyTensors(await this.run(item)));
      return outs;
    }
    const rowsOf = items.map((it) => it[this.info.inputs[0].name].dims[0]);
    const rows = rowsOf.reduce((a, b) => a + b, 0);
    const feeds: Tensors = {};
    for (const spec of this.info.inputs) {
      const perRow = elementCount(items[0][spec.name].dims.slice(1));
      for (const it of items) {
        if (elementCount(it[spec.name].dims.slice(1)) !== perRow) {
          throw new ItemError(400, `input "${spec.name}": items in one batch must have the same non-batch shape`);
        }
      }
      const slab = this.inSlabs.get(spec.name, spec.type, rows * perRow);
      let off = 0;
      for (const it of items) {
        slab.set(it[spec.name].data as never, off);
        off += it[spec.name].data.length;
      }
      feeds[spec.name] = { type: spec.type, dims: [rows, ...items[0][spec.name].dims.slice(1)], data: slab };
    }
    // Preallocated outputs where the model declares every non-batch dimension.
    const fetches: Record<string, ort.Tensor> = {};
    let allStatic = true;
    for (const spec of this.info.outputs) {
      if (spec.shape.slice(1).some((d) => d < 0)) {
        allStatic = false;
        break;
      }
      const dims = [rows, ...spec.shape.slice(1)];
      fetches[spec.name] = ortTensor(spec.type, this.outSlabs.get(spec.name, spec.type, elementCount(dims)), dims);
    }
    const out = await this.run(feeds, allStatic ? fetches : undefined);
    const result: Tensors[] = [];
    let row = 0;
    for (const n of rowsOf) {
      const item: Tensors = {};
      for (const [name, t] of Object.entries(out)) {
        const perRow = elementCount(t.dims.slice(1));
        item[name] = {
          type: t.type,
          dims: [n, ...t.dims.slice(1)],
          data: t.data.subarray(row * perRow, (row + n) * perRow) as TensorData,
        };
      }
      result.push(item);
      row += n;
    }
    return result;
  }
}

function copyTensors(ts: Tensors): Tensors {
  const out: Tensors = {};
  for (const [k, t] of Object.entries(ts)) out[k] = { ...t, data: t.data.slice() as TensorData };
  return out;
}

const utf8Encoder = new TextEncoder();

/**
 * A JSON item's body, parsed here rather than on the controller's serving loop, with the same bounds and
 * messages as the controller's own JSON bodies (depth, number range).
 */
function parseItemJson(body: Uint8Array, at: ByteRange): unknown {
  try {
    return parseJsonBytes(body.subarray(at.offset, at.offset + at.bytes));
  } catch (e) {
    if (e instanceof BadJsonBody) throw new ItemError(400, e.message);
    throw e;
  }
}

/** A function's answer as UTF-8 JSON; an answer JSON cannot carry is the function's error. */
function encodeAnswer(value: unknown): Uint8Array {
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error("postprocess returned a value JSON cannot carry (e.g. undefined)");
  return utf8Encoder.encode(text);
}

/** Tensors of a `tensors` item, as views into the frame body (valid while this batch runs). */
function wireToTensors(inputs: WireTensor[], body: Uint8Array): Tensors {
  const out: Tensors = {};
  for (const w of inputs) {
    const info = TYPES[w.type];
    const n = w.bytes / info.bytes;
    const abs = body.byteOffset + w.offset;
    // Typed-array views need aligned offsets; copy the rare misaligned tensor.
    out[w.name] = {
      type: w.type,
      dims: w.shape,
      data: abs % info.bytes === 0
        ? info.make(body.buffer as ArrayBuffer, abs, n)
        : info.make(body.slice(w.offset, w.offset + w.bytes).buffer, 0, n),
    };
  }
  return out;
}

/** Serialises output tensors into body parts (views, no copies) and their wire descriptors. */
function tensorsToWire(ts: Tensors, parts: Uint8Array[], offset: { n: number }, only?: Set<string>): WireTensor[] {
  const wires: WireTensor[] = [];
  for (const [name, t] of Object.entries(ts)) {
    if (only && !only.has(name)) continue;
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    // Keep every tensor 8-byte aligned in the body so the reader can view it without copying.
    offset.n = padTo8(parts, offset.n);
    wires.push({ name, type: t.type, shape: t.dims, offset: offset.n, bytes: bytes.byteLength });
    parts.push(bytes);
    offset.n += bytes.byteLength;
  }
  return wires;
}

async function handleRun(
  msg: RunMessage,
  body: Uint8Array,
  def: FunctionDefinition,
  exec: Executor,
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
function sessionPlacement(config: WorkerConfig) {
  if (config.cuda) {
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
    item[spec.name] = { type: spec.type, dims, data: TYPES[spec.type].alloc(elementCount(dims)) };
  }
  return item;
}

async function warmUp(def: FunctionDefinition, exec: Executor, batches: number[]): Promise<Record<string, number>> {
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

async function main(): Promise<void> {
  const config = JSON.parse(Deno.args[0]) as WorkerConfig;
  const conn = await Deno.connect({ transport: "unix", path: config.socket });
  const writer = new FrameWriter(conn);
  const reader = new FrameReader(conn);
  let stage: FatalMessage["stage"] = "import";
  let def: FunctionDefinition;
  let exec: Executor;
  try {
    const mod = await import(`file://${config.functionFile}`);
    stage = "validate";
    if (!isDefinedFunction(mod.default)) throw new Error("function.ts must default-export defineFunction({...})");
    def = mod.default as FunctionDefinition;
    const m = config.manifest;
    if (def.model !== m.model || def.sloMs !== m.sloMs || (def.maxBatch ?? 32) !== m.maxBatch) {
      throw new Error("function.ts does not match the deployed manifest (model, sloMs, maxBatch)");
    }
    stage = "load";
    const session = await ort.InferenceSession.create(config.modelFile, {
      intraOpNumThreads: config.threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      ...sessionPlacement(config),
    });
    exec = new Executor(session, modelInfo(session));
    stage = "warmup";
    const warmLatencyMs = await warmUp(def, exec, config.warmBatches);
    const ready: ReadyMessage = { type: "ready", pid: Deno.pid, model: exec.info, warmLatencyMs };
    await writer.write(ready);
  } catch (e) {
    const fatal: FatalMessage = { type: "fatal", stage, error: describe(e) };
    await writer.write(fatal).catch(() => {});
    conn.close();
    Deno.exit(3);
  }
  // One batch at a time. Its input tensors are views of the frame body, and outputs may be too (an identity
  // model), so the body goes back to the reader only once the result is written.
  for (;;) {
    const frame = await reader.next<RunMessage | { type: "stop" }>();
    if (!frame || frame.header.type === "stop") break;
    const { header, parts } = await handleRun(frame.header, frame.body, def, exec);
    await writer.write(header, parts);
    frame.release();
  }
  conn.close();
  Deno.exit(0);
}

if (import.meta.main) {
  // The controller going away closes the socket; any unexpected error ends the process (it is respawned).
  main().catch((e) => {
    console.error(`gpulet worker: ${describe(e)}`);
    Deno.exit(1);
  });
}
