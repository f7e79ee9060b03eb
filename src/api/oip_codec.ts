/**
 * Open Inference Protocol (KServe v2) JSON tensors: validation against the model's signature and
 * conversion to and from the binary tensors workers use. Pure functions.
 */
import { z } from "zod";
import type { OutputTensor } from "../admission/request.ts";
import { padTo8 } from "../runtime/framing.ts";
import type { ModelInfo, WireTensor } from "../runtime/protocol.ts";
import { elementCount, type OrtType, ortTypeOf, TYPES } from "../runtime/tensor.ts";

/** A request that is well-formed JSON but says something the model cannot take. */
export class BadTensorRequest extends Error {}

const Parameters = z.record(z.string(), z.unknown()).optional();

/** The JSON body of `POST /v2/models/{name}/infer`. */
export const InferRequest = z.object({
  id: z.string().max(256).optional(),
  parameters: Parameters,
  inputs: z.array(z.object({
    name: z.string().max(256),
    shape: z.array(z.number().int().min(0)).max(16),
    datatype: z.string().max(16),
    parameters: Parameters,
    data: z.array(z.unknown()),
  })).min(1).max(64),
  outputs: z.array(z.object({ name: z.string().max(256), parameters: Parameters })).max(64).optional(),
});
export type InferRequest = z.infer<typeof InferRequest>;

const INT_RANGES: Partial<Record<OrtType, [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  uint16: [0, 65535],
  int16: [-32768, 32767],
  uint32: [0, 4294967295],
  int32: [-2147483648, 2147483647],
};

/** Flattens row-major nested arrays (at most `maxDepth` levels) into `out`. */
function flatten(data: unknown[], maxDepth: number, out: unknown[], where: string): void {
  for (const v of data) {
    if (Array.isArray(v)) {
      if (maxDepth <= 1) throw new BadTensorRequest(`${where}: data is nested deeper than its shape`);
      flatten(v, maxDepth - 1, out, where);
    } else out.push(v);
  }
}

/** Writes `values` as `type` into a new typed array; says which element is wrong when one is. */
function encodeValues(values: unknown[], type: OrtType, where: string): Uint8Array {
  const info = TYPES[type];
  const arr = info.alloc(values.length);
  const bad = (i: number, what: string) =>
    new BadTensorRequest(`${where}: element ${i} (${JSON.stringify(values[i])}) is not ${what}`);
  if (type === "bool") {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "boolean") throw bad(i, "a boolean");
      arr[i] = v ? 1 : 0;
    }
  } else if (type === "int64" || type === "uint64") {
    const big = arr as BigInt64Array | BigUint64Array;
    const [lo, hi] = type === "int64" ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isInteger(v)) throw bad(i, `an integer (${type})`);
      const b = BigInt(v);
      if (b < lo || b > hi) throw bad(i, `in range for ${type}`);
      big[i] = b;
    }
  } else if (type === "float16" || type === "float32" || type === "float64") {
    const f = arr as Float16Array | Float32Array | Float64Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isFinite(v)) throw bad(i, "a finite number");
      f[i] = v;
    }
  } else {
    const [lo, hi] = INT_RANGES[type]!;
    const ints = arr as Int32Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
        throw bad(i, `an integer in [${lo}, ${hi}] (${type})`);
      }
      ints[i] = v;
    }
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** Binary model inputs of one infer request, and the rows it adds to a batch. */
export interface DecodedInputs {
  inputs: WireTensor[];
  bytes: Uint8Array[];
  rows: number;
}

/**
 * Checks an infer request against the model (names, datatypes, ranks, fixed dimensions, element counts,
 * value ranges) and encodes its tensors. `maxElements` bounds any one tensor.
 */
export function decodeInferRequest(req: InferRequest, model: ModelInfo, maxElements: number): DecodedInputs {
  const byName = new Map(model.inputs.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const inputs: WireTensor[] = [];
  const bytes: Uint8Array[] = [];
  let offset = 0;
  let rows = -1;
  for (const t of req.inputs) {
    const spec = byName.get(t.name);
    const where = `input "${t.name}"`;
    if (!spec) throw new BadTensorRequest(`unknown ${where}; the model takes ${[...byName.keys()].join(", ")}`);
    if (seen.has(t.name)) throw new BadTensorRequest(`${where} is given twice`);
    seen.add(t.name);
    const type = ortTypeOf(t.datatype);
    if (!type) throw new BadTensorRequest(`${where}: unsupported datatype "${t.datatype}"`);
    if (type !== spec.type) {
      throw new BadTensorRequest(`${where}: datatype ${t.datatype}, the model expects ${TYPES[spec.type].oip}`);
    }
    if (t.shape.length !== spec.shape.length) {
      throw new BadTensorRequest(
        `${where}: shape ${JSON.stringify(t.shape)} has rank ${t.shape.length}, the model expects ${
          JSON.stringify(spec.shape)
        } (-1 = any)`,
      );
    }
    spec.shape.forEach((d, i) => {
      if (d !== -1 && t.shape[i] !== d) {
        throw new BadTensorRequest(
          `${where}: shape ${JSON.stringify(t.shape)} does not match the model's ${
            JSON.stringify(spec.shape)
          } (-1 = any)`,
        );
      }
    });
    const count = elementCount(t.shape);
    if (count > maxElements) {
      throw new BadTensorRequest(`${where}: ${count} elements is more than the limit of ${maxElements}`);
    }
    const flat: unknown[] = [];
    flatten(t.data, Math.max(1, t.shape.length), flat, where);
    if (flat.length !== count) {
      throw new BadTensorRequest(
        `${where}: shape ${JSON.stringify(t.shape)} needs ${count} elements, data has ${flat.length}`,
      );
    }
    const encoded = encodeValues(flat, type, where);
    if (model.batchable) {
      if (rows === -1) rows = t.shape[0];
      else if (rows !== t.shape[0]) throw new BadTensorRequest(`inputs disagree on the batch dimension (dimension 0)`);
    }
    inputs.push({ name: t.name, type, shape: t.shape, offset, bytes: encoded.byteLength });
    bytes.push(encoded);
    offset = padTo8(bytes, offset + encoded.byteLength);
  }
  const missing = model.inputs.filter((s) => !seen.has(s.name)).map((s) => s.name);
  if (missing.length) throw new BadTensorRequest(`missing input(s): ${missing.join(", ")}`);
  const outNames = new Set(model.outputs.map((o) => o.name));
  for (const o of req.outputs ?? []) {
    if (!outNames.has(o.name)) {
      throw new BadTensorRequest(`unknown output "${o.name}"; the model gives ${[...outNames].join(", ")}`);
    }
  }
  if (model.batchable && rows === 0) throw new BadTensorRequest("the batch dimension (dimension 0) is 0");
  return { inputs, bytes, rows: Math.max(rows, 1) };
}

/** An output tensor as OIP JSON: flat row-major data; 64-bit integers become numbers, BOOL booleans. */
export function encodeOutput(t: OutputTensor) {
  const info = TYPES[t.type];
  const typed = info.make(t.data.buffer as ArrayBuffer, t.data.byteOffset, t.data.byteLength / info.bytes);
  let data: unknown[];
  if (t.type === "bool") data = Array.from(typed as Uint8Array, (v) => v !== 0);
  else if (t.type === "int64" || t.type === "uint64") data = Array.from(typed as BigInt64Array, (v) => Number(v));
  else data = Array.from(typed as Float32Array);
  return { name: t.name, datatype: info.oip, shape: t.shape, data };
}

/** Model metadata in OIP form (`-1` for symbolic dimensions). */
export function modelMetadata(name: string, versions: string[], model: ModelInfo) {
  const spec = (s: ModelInfo["inputs"][number]) => ({ name: s.name, datatype: TYPES[s.type].oip, shape: s.shape });
  return { name, versions, platform: "onnxruntime", inputs: model.inputs.map(spec), outputs: model.outputs.map(spec) };
}
