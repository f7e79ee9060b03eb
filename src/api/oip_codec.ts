/**
 * Open Inference Protocol (KServe v2) tensors: validation against the model's signature and conversion to
 * and from the binary tensors workers use. Tensors come as JSON `data` or, with the binary tensor data
 * extension, as raw little-endian bytes after the JSON header (`Inference-Header-Content-Length`).
 * Pure functions.
 */
import { z } from "zod";
import type { OutputTensor } from "../admission/request.ts";
import { padTo8 } from "../runtime/framing.ts";
import type { ModelInfo, WireTensor } from "../runtime/protocol.ts";
import {
  BadBytesTensor,
  bytesElementsToStrings,
  elementCount,
  encodeBytesElements,
  oipName,
  type OrtType,
  ortTypeOf,
  splitBytesElements,
  TYPES,
} from "../functions/tensor.ts";

/** A request that is well-formed JSON but says something the model cannot take. */
export class BadTensorRequest extends Error {}

/** The HTTP header that gives the length of the JSON part of a binary-extension body. */
export const HEADER_LENGTH_HEADER = "inference-header-content-length";

/** Free-form OIP parameters plus the ones this server reads. */
const parameters = <T extends z.ZodRawShape>(known: T) => z.object(known).catchall(z.unknown()).optional();

/** Longest request id (characters): the protocol sets no limit; this one only bounds what is echoed back. */
const MAX_REQUEST_ID = 16384;

/** The JSON body (or JSON header) of `POST /v2/models/{name}/infer`. */
export const InferRequest = z.object({
  id: z.string().max(MAX_REQUEST_ID).optional(),
  parameters: parameters({ binary_data_output: z.boolean().optional() }),
  inputs: z.array(z.object({
    name: z.string().max(256),
    shape: z.array(z.number().int().min(0)).max(16),
    datatype: z.string().max(16),
    parameters: parameters({ binary_data_size: z.number().int().min(0).optional() }),
    data: z.array(z.unknown()).optional(),
  })).min(1).max(64),
  outputs: z.array(z.object({
    name: z.string().max(256),
    parameters: parameters({ binary_data: z.boolean().optional() }),
  })).max(64).optional(),
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

/** A value as an error message quotes it (bigints, which JSON cannot carry, as their digits). */
function shown(v: unknown): string {
  return (typeof v === "bigint" ? v.toString() : String(JSON.stringify(v))).slice(0, 40);
}

/**
 * Writes `values` as `type` into a new typed array (BYTES: its OIP binary form); says which element is
 * wrong when one is.
 */
function encodeValues(values: unknown[], type: OrtType, where: string): Uint8Array {
  const bad = (i: number, what: string) =>
    new BadTensorRequest(`${where}: element ${i} (${shown(values[i])}) is not ${what}`);
  if (type === "string") {
    const i = values.findIndex((v) => typeof v !== "string");
    if (i >= 0) throw bad(i, "a string (BYTES in JSON are UTF-8 strings)");
    return encodeBytesElements(values as string[]);
  }
  const info = TYPES[type];
  const arr = info.alloc(values.length);
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
      // gRPC's int64 contents arrive exact, as bigints; JSON's as numbers.
      if (typeof v !== "bigint" && (typeof v !== "number" || !Number.isInteger(v))) {
        throw bad(i, `an integer (${type})`);
      }
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
 * Splits a request body into its JSON header and the binary tensor data after it, given the value of the
 * `Inference-Header-Content-Length` header (absent: the whole body is JSON).
 */
export function splitInferBody(
  body: Uint8Array,
  headerLength: string | undefined,
): { json: string; binary: Uint8Array } {
  if (headerLength === undefined) return { json: new TextDecoder().decode(body), binary: body.subarray(0, 0) };
  const n = /^[0-9]{1,15}$/.test(headerLength.trim()) ? Number(headerLength) : NaN;
  if (!(n <= body.byteLength)) {
    throw new BadTensorRequest(
      `Inference-Header-Content-Length "${
        headerLength.slice(0, 20)
      }" is not a byte count within the body (${body.byteLength} bytes)`,
    );
  }
  return { json: new TextDecoder().decode(body.subarray(0, n)), binary: body.subarray(n) };
}

/**
 * Checks a BYTES tensor in OIP binary form: `count` elements, each valid UTF-8 (what onnxruntime's string
 * tensors hold) unless `anyBytes`, so the gpu-let never meets a malformed one.
 */
function checkBytesTensor(bytes: Uint8Array, count: number, where: string, anyBytes = false): void {
  try {
    if (anyBytes) splitBytesElements(bytes, count);
    else bytesElementsToStrings(bytes, count);
  } catch (e) {
    if (e instanceof BadBytesTensor) throw new BadTensorRequest(`${where}: BYTES data ${e.message}`);
    throw e;
  }
}

/** Takes an input's bytes from the binary part, checking their size against its shape and datatype. */
function binaryInput(
  binary: Uint8Array,
  cursor: number,
  size: number,
  count: number,
  type: OrtType,
  where: string,
  anyBytes = false,
): Uint8Array {
  if (type !== "string") {
    const expected = count * TYPES[type].bytes;
    if (size !== expected) {
      throw new BadTensorRequest(
        `${where}: binary_data_size ${size} does not match ${count} elements of ${TYPES[type].oip} (${expected} bytes)`,
      );
    }
  }
  if (cursor + size > binary.byteLength) {
    throw new BadTensorRequest(
      `${where}: binary data ends after ${binary.byteLength - cursor} of its ${size} bytes`,
    );
  }
  const bytes = binary.subarray(cursor, cursor + size);
  if (type === "string") checkBytesTensor(bytes, count, where, anyBytes);
  if (type === "bool") {
    const i = bytes.findIndex((b) => b > 1);
    if (i >= 0) throw new BadTensorRequest(`${where}: element ${i} is byte ${bytes[i]}, BOOL takes 0 or 1`);
  }
  return bytes;
}

/**
 * Checks an infer request against the model (names, datatypes, ranks, fixed dimensions, element counts,
 * value ranges) and encodes its tensors. `maxElements` bounds any one tensor. `binary` is the part of the
 * body after the JSON header; inputs with `parameters.binary_data_size` take their bytes from it, in order.
 */
export function decodeInferRequest(
  req: InferRequest,
  model: ModelInfo,
  maxElements: number,
  binary: Uint8Array = new Uint8Array(0),
): DecodedInputs {
  const byName = new Map(model.inputs.map((s) => [s.name, s]));
  const seen = new Set<string>();
  const inputs: WireTensor[] = [];
  const bytes: Uint8Array[] = [];
  let offset = 0;
  let cursor = 0;
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
      throw new BadTensorRequest(`${where}: datatype ${t.datatype}, the model expects ${oipName(spec.type)}`);
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
    const binarySize = t.parameters?.binary_data_size;
    let encoded: Uint8Array;
    if (binarySize !== undefined) {
      if (t.data !== undefined) throw new BadTensorRequest(`${where}: give either data or binary_data_size, not both`);
      encoded = binaryInput(binary, cursor, binarySize, count, type, where, spec.anyBytes);
      cursor += binarySize;
    } else {
      if (t.data === undefined) throw new BadTensorRequest(`${where}: no data and no parameters.binary_data_size`);
      // Flat data (the common case) is used as is; nested data is flattened row-major.
      const flat = t.data.some(Array.isArray) ? [] : t.data;
      if (flat !== t.data) flatten(t.data, Math.max(1, t.shape.length), flat, where);
      if (flat.length !== count) {
        throw new BadTensorRequest(
          `${where}: shape ${JSON.stringify(t.shape)} needs ${count} elements, data has ${flat.length}`,
        );
      }
      encoded = encodeValues(flat, type, where);
    }
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
  if (cursor !== binary.byteLength) {
    throw new BadTensorRequest(
      `${binary.byteLength - cursor} bytes of binary data after the JSON header belong to no input`,
    );
  }
  if (model.batchable && rows === 0) throw new BadTensorRequest("the batch dimension (dimension 0) is 0");
  return { inputs, bytes, rows: Math.max(rows, 1) };
}

/** An OIP response body: JSON, or a JSON header followed by binary output data. */
export interface EncodedResponse {
  body: Uint8Array | string;
  /** Length of the JSON header when outputs are binary (the `Inference-Header-Content-Length` value). */
  headerLength?: number;
}

/**
 * Encodes an infer response. Outputs go as binary data when the request asked for it, per output
 * (`parameters.binary_data`) or for all (`parameters.binary_data_output`), else as JSON.
 */
export function encodeInferResponse(
  req: InferRequest,
  head: { model_name: string; model_version: string; parameters?: Record<string, unknown> },
  outputs: OutputTensor[],
): EncodedResponse {
  const asked = req.outputs ? new Map(req.outputs.map((o) => [o.name, o.parameters?.binary_data])) : null;
  const allBinary = req.parameters?.binary_data_output === true;
  const parts: Uint8Array[] = [];
  const json = outputs.filter((o) => !asked || asked.has(o.name)).map((o) => {
    const binary = asked?.get(o.name) ?? allBinary;
    if (!binary) return encodeOutput(o);
    parts.push(o.data);
    return {
      name: o.name,
      datatype: oipName(o.type),
      shape: o.shape,
      parameters: { binary_data_size: o.data.byteLength },
    };
  });
  const header = JSON.stringify({ ...head, id: req.id, outputs: json });
  if (parts.length === 0) return { body: header };
  const headerBytes = new TextEncoder().encode(header);
  const body = new Uint8Array(headerBytes.byteLength + parts.reduce((n, p) => n + p.byteLength, 0));
  body.set(headerBytes, 0);
  let at = headerBytes.byteLength;
  for (const p of parts) {
    body.set(p, at);
    at += p.byteLength;
  }
  return { body, headerLength: headerBytes.byteLength };
}

/**
 * An output tensor as OIP JSON: flat row-major data; 64-bit integers become numbers, BOOL booleans, BYTES
 * strings.
 */
export function encodeOutput(t: OutputTensor) {
  if (t.type === "string") {
    return { name: t.name, datatype: "BYTES", shape: t.shape, data: bytesElementsToStrings(t.data) };
  }
  const info = TYPES[t.type];
  const typed = info.make(t.data.buffer as ArrayBuffer, t.data.byteOffset, t.data.byteLength / info.bytes);
  let data: unknown[];
  if (t.type === "bool") data = Array.from(typed as Uint8Array, (v) => v !== 0);
  else if (t.type === "int64" || t.type === "uint64") data = Array.from(typed as BigInt64Array, (v) => Number(v));
  else data = Array.from(typed as Float32Array);
  return { name: t.name, datatype: info.oip, shape: t.shape, data };
}

/** The platform name of every function's model, as Triton spells it for ONNX models. */
const PLATFORM = "onnxruntime_onnx";

/** Model metadata in OIP form (`-1` for symbolic dimensions). */
export function modelMetadata(name: string, versions: string[], model: ModelInfo) {
  const spec = (s: ModelInfo["inputs"][number]) => ({ name: s.name, datatype: oipName(s.type), shape: s.shape });
  return { name, versions, platform: PLATFORM, inputs: model.inputs.map(spec), outputs: model.outputs.map(spec) };
}
