/**
 * Client side of the Open Inference Protocol binary tensor data extension: builds request bodies whose
 * tensors travel as raw bytes, and reads responses whose outputs do. Used by the CLI, the benchmarks and
 * the tests; any HTTP client can do the same by hand.
 */
import {
  bytesElementsToStrings,
  encodeBytesElements,
  type OipDatatype,
  ortTypeOf,
  type TensorData,
  TYPES,
} from "../functions/tensor.ts";
import { HEADER_LENGTH_HEADER } from "./oip_codec.ts";

/** An input tensor with typed-array data, or (BYTES) its elements. */
export interface BinaryTensor {
  name: string;
  datatype: OipDatatype;
  shape: number[];
  data: TensorData | (string | Uint8Array)[];
}

/** A tensor's bytes as the binary extension carries them. */
function wireBytes(data: BinaryTensor["data"]): Uint8Array {
  return Array.isArray(data)
    ? encodeBytesElements(data)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A request ready for `fetch`: body and the headers that say where its JSON part ends. */
export interface BinaryInferRequest {
  body: Uint8Array<ArrayBuffer>;
  headers: Record<string, string>;
}

/** Builds an infer request whose inputs are binary; outputs are asked for as binary too unless `jsonOutputs`. */
export function binaryInferRequest(
  inputs: BinaryTensor[],
  opts: { id?: string; jsonOutputs?: boolean } = {},
): BinaryInferRequest {
  const parts = inputs.map((t) => wireBytes(t.data));
  const header = {
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    ...(opts.jsonOutputs ? {} : { parameters: { binary_data_output: true } }),
    inputs: inputs.map((t, i) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      parameters: { binary_data_size: parts[i].byteLength },
    })),
  };
  const head = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(head.byteLength + parts.reduce((n, p) => n + p.byteLength, 0));
  body.set(head, 0);
  let at = head.byteLength;
  for (const p of parts) {
    body.set(p, at);
    at += p.byteLength;
  }
  return {
    body,
    headers: { "content-type": "application/octet-stream", [HEADER_LENGTH_HEADER]: String(head.byteLength) },
  };
}

/**
 * An output tensor of a response: `data` is a typed array for binary numeric outputs, the strings of a
 * binary BYTES output, the JSON array otherwise.
 */
export interface ResponseTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: TensorData | unknown[];
}

/** Reads an infer response (JSON, or JSON header plus binary outputs). Throws on a non-2xx status. */
export async function readInferResponse(
  res: Response,
): Promise<{ model_name: string; id?: string; outputs: ResponseTensor[] }> {
  const bytes = new Uint8Array(await res.arrayBuffer());
  const headerLength = res.headers.get(HEADER_LENGTH_HEADER);
  const n = headerLength === null ? bytes.byteLength : Number(headerLength);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n)));
  if (!res.ok) throw new Error(`${res.status}: ${json.error ?? JSON.stringify(json)}`);
  let at = n;
  for (const o of json.outputs as (ResponseTensor & { parameters?: { binary_data_size?: number } })[]) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    const type = ortTypeOf(o.datatype);
    if (!type) throw new Error(`output ${o.name}: unknown datatype ${o.datatype}`);
    // Copy so the typed array is aligned for its element size.
    const copy = bytes.slice(at, at + size);
    o.data = type === "string"
      ? bytesElementsToStrings(copy)
      : TYPES[type].make(copy.buffer, 0, size / TYPES[type].bytes);
    at += size;
  }
  return json;
}
