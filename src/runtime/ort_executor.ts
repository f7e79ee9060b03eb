/**
 * A model in onnxruntime as a worker runs it: batches stacked into reusable slabs, one run, outputs split per
 * request, each request's tensors checked against the model's signature first.
 */
import ort from "onnxruntime-node";
import type { ModelRunner, Tensors } from "../functions/sdk.ts";
import {
  elementCount,
  isOrtType,
  type NumericType,
  type OrtType,
  type Tensor,
  type TensorData,
  TYPES,
} from "../functions/tensor.ts";
import { ItemError } from "./item_codec.ts";
import type { ModelInfo, TensorSpec } from "./protocol.ts";

/** Per-input reusable slabs: preallocated, touched once, grown only when a batch needs more. */
class Slabs {
  private readonly slabs = new Map<string, TensorData>();

  get(name: string, type: NumericType, elements: number): TensorData {
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
function ortTensor(type: OrtType, data: TensorData | string[], dims: readonly number[]): ort.Tensor {
  if (type !== "float16") return new ort.Tensor(type, data as never, dims);
  const half = data as Float16Array;
  const bits = new Uint16Array(half.buffer, half.byteOffset, half.length);
  const t = new ort.Tensor("float16", bits, dims);
  (t as unknown as { cpuData: Uint16Array }).cpuData = bits;
  return t;
}

/** A session's signature: its inputs and outputs, and whether dimension 0 is the batch throughout. */
export function modelInfo(session: ort.InferenceSession): ModelInfo {
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
export class ModelExecutor {
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
      result[name] = { type: t.type, dims: [...t.dims], data: t.data } as Tensor;
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
      const dims = [rows, ...items[0][spec.name].dims.slice(1)];
      if (spec.type === "string") {
        feeds[spec.name] = { type: "string", dims, data: items.flatMap((it) => it[spec.name].data as string[]) };
        continue;
      }
      const slab = this.inSlabs.get(spec.name, spec.type, rows * perRow);
      let off = 0;
      for (const it of items) {
        slab.set(it[spec.name].data as never, off);
        off += it[spec.name].data.length;
      }
      feeds[spec.name] = { type: spec.type, dims, data: slab };
    }
    // Preallocated outputs where the model declares every non-batch dimension.
    const fetches: Record<string, ort.Tensor> = {};
    let allStatic = true;
    for (const spec of this.info.outputs) {
      // onnxruntime allocates string outputs itself.
      if (spec.type === "string" || spec.shape.slice(1).some((d) => d < 0)) {
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
        const dims = [n, ...t.dims.slice(1)];
        item[name] = t.type === "string"
          ? { type: "string", dims, data: t.data.slice(row * perRow, (row + n) * perRow) }
          : { type: t.type, dims, data: t.data.subarray(row * perRow, (row + n) * perRow) as TensorData };
      }
      result.push(item);
      row += n;
    }
    return result;
  }
}

/** A copy of `ts` that owns its data. */
export function copyTensors(ts: Tensors): Tensors {
  const out: Tensors = {};
  for (const [k, t] of Object.entries(ts)) out[k] = { ...t, data: t.data.slice() } as Tensor;
  return out;
}
