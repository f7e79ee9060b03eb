/**
 * The gRPC messages of the inference service (`inference.proto` beside this file) and their conversion to
 * and from what the HTTP side uses, so both protocols share one validation (`decodeInferRequest`) and one
 * set of messages. Typed contents become the JSON form's `data`; raw contents (and BYTES contents) the
 * binary extension's bytes. Pure, apart from reading the .proto once at import.
 */
import protobuf from "protobufjs";
import type { OutputTensor } from "../../admission/request.ts";
import {
  encodeBytesElements,
  oipName,
  type OrtType,
  ortTypeOf,
  splitBytesElements,
  TYPES,
} from "../../functions/tensor.ts";
import { concatBytes } from "../../runtime/bytes.ts";
import { BadTensorRequest, encodeOutput, type InferRequest } from "../oip_codec.ts";

const root = protobuf.parse(Deno.readTextFileSync(new URL("./inference.proto", import.meta.url))).root;

/** The request message of ModelInfer (clients and benchmarks encode their requests with it). */
export const ModelInferRequest = root.lookupType("inference.ModelInferRequest");
export const ModelInferResponse = root.lookupType("inference.ModelInferResponse");

/** The service (its methods: name, request and response types, streaming). */
export const InferenceService = root.lookupService("inference.GRPCInferenceService");

/** An int64 as protobufjs decodes it: a number, or a Long-like object when it may not fit one. */
type Int64 = number | { low: number; high: number; unsigned: boolean; toString(): string };

/** An `InferParameter` / `ModelRepositoryParameter` as decoded: one of its fields set. */
interface DecodedParameter {
  boolParam?: boolean;
  int64Param?: Int64;
  stringParam?: string;
  doubleParam?: number;
  uint64Param?: Int64;
  bytesParam?: Uint8Array;
  parameterChoice?: string;
}

interface DecodedContents {
  boolContents: boolean[];
  intContents: number[];
  int64Contents: Int64[];
  uintContents: number[];
  uint64Contents: Int64[];
  fp32Contents: number[];
  fp64Contents: number[];
  bytesContents: Uint8Array[];
}

/** A `ModelInferRequest` as protobufjs decodes it (fields in camelCase). */
export interface DecodedInferRequest {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters: Record<string, DecodedParameter>;
  inputs: {
    name: string;
    datatype: string;
    shape: Int64[];
    parameters: Record<string, DecodedParameter>;
    contents?: DecodedContents | null;
  }[];
  outputs: { name: string; parameters: Record<string, DecodedParameter> }[];
  rawInputContents: Uint8Array[];
}

/** A decoded parameter's value, whichever field holds it (64-bit integers as numbers). */
export function parameterValue(p: DecodedParameter | undefined): unknown {
  if (!p?.parameterChoice) return undefined;
  const v = (p as Record<string, unknown>)[p.parameterChoice];
  return typeof v === "object" && v !== null && "low" in v ? Number(v.toString()) : v;
}

/** An int64 exactly, as a bigint. */
function bigintOf(v: Int64): bigint {
  return typeof v === "number" ? BigInt(v) : BigInt(v.toString());
}

/** The typed-contents field that carries each datatype (FP16 has none: it travels raw). */
const CONTENTS_FIELD: Partial<Record<OrtType, keyof DecodedContents>> = {
  bool: "boolContents",
  int8: "intContents",
  int16: "intContents",
  int32: "intContents",
  int64: "int64Contents",
  uint8: "uintContents",
  uint16: "uintContents",
  uint32: "uintContents",
  uint64: "uint64Contents",
  float32: "fp32Contents",
  float64: "fp64Contents",
  string: "bytesContents",
};

/** The proto field name of a contents field, as error messages quote it (`fp32_contents`). */
const protoName = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const ALL_CONTENTS_FIELDS = [...new Set(Object.values(CONTENTS_FIELD))];

/** The typed-contents field of an input that holds elements, if one does. */
function contentsGiven(c: DecodedContents | null | undefined): keyof DecodedContents | undefined {
  if (!c) return undefined;
  return ALL_CONTENTS_FIELDS.find((f) => c[f]?.length > 0);
}

/**
 * A gRPC infer request as the HTTP side's request (JSON part and binary part), for `decodeInferRequest` to
 * check against the model. Raw contents, and BYTES typed contents, become binary inputs; other typed
 * contents become `data`. Throws {@link BadTensorRequest} for what only gRPC can get wrong (raw contents
 * that do not match the inputs, contents in another datatype's field).
 */
export function inferRequestOf(m: DecodedInferRequest): { req: InferRequest; binary: Uint8Array } {
  const raw = m.rawInputContents;
  if (raw.length > 0 && raw.length !== m.inputs.length) {
    throw new BadTensorRequest(`raw_input_contents has ${raw.length} entries for ${m.inputs.length} inputs`);
  }
  const parts: Uint8Array[] = [];
  const inputs = m.inputs.map((t, i) => {
    const where = `input "${t.name}"`;
    const shape = t.shape.map((d) => Number(bigintOf(d)));
    const given = contentsGiven(t.contents);
    const binary = (bytes: Uint8Array) => {
      parts.push(bytes);
      return { name: t.name, datatype: t.datatype, shape, parameters: { binary_data_size: bytes.byteLength } };
    };
    if (raw.length > 0) {
      if (given) throw new BadTensorRequest(`${where}: give raw_input_contents or contents, not both`);
      return binary(raw[i]);
    }
    const type = ortTypeOf(t.datatype);
    const field = type && CONTENTS_FIELD[type];
    if (type === "float16") {
      throw new BadTensorRequest(`${where}: FP16 has no typed contents; send it in raw_input_contents`);
    }
    if (given && field && given !== field) {
      throw new BadTensorRequest(`${where}: ${t.datatype} takes ${protoName(field)}, not ${protoName(given)}`);
    }
    if (type === "string") return binary(encodeBytesElements(t.contents?.bytesContents ?? []));
    const values = field && t.contents ? t.contents[field] : [];
    const data = type === "int64" || type === "uint64" ? (values as Int64[]).map(bigintOf) : values as unknown[];
    return { name: t.name, datatype: t.datatype, shape, data };
  });
  const outputs = m.outputs.length > 0 ? m.outputs.map((o) => ({ name: o.name })) : undefined;
  const req: InferRequest = { inputs, ...(outputs ? { outputs } : {}), ...(m.id ? { id: m.id } : {}) };
  return { req, binary: parts.length === 1 ? parts[0] : concatBytes(parts) };
}

/**
 * A value as an `InferParameter`: booleans, numbers and strings each in their own field; times (`*_ms`)
 * always as doubles and other integers as int64, so a parameter's field never changes with its value.
 */
function inferParameter(name: string, v: unknown): Record<string, unknown> {
  if (typeof v === "boolean") return { boolParam: v };
  if (typeof v === "number") {
    return Number.isInteger(v) && !name.endsWith("_ms") ? { int64Param: v } : { doubleParam: v };
  }
  return { stringParam: String(v) };
}

/** Typed contents of an output (64-bit integers exact, as decimal strings protobufjs encodes). */
function typedContents(t: OutputTensor): Record<string, unknown> {
  const field = CONTENTS_FIELD[t.type];
  if (!field) throw new BadTensorRequest(`output "${t.name}": ${oipName(t.type)} travels only raw`);
  if (t.type === "string") return { [field]: splitBytesElements(t.data) };
  if (t.type === "int64" || t.type === "uint64") {
    const info = TYPES[t.type];
    const big = info.make(t.data.buffer as ArrayBuffer, t.data.byteOffset, t.data.byteLength / info.bytes);
    return { [field]: Array.from(big as BigInt64Array, (v) => v.toString()) };
  }
  return { [field]: encodeOutput(t).data };
}

/**
 * A `ModelInferResponse` (plain object for protobufjs to encode): outputs as `raw_output_contents` (what
 * Triton answers), or as typed contents when the request's `binary_data_output` parameter is false; only
 * the outputs the request asked for, when it asked.
 */
export function inferResponseOf(
  m: DecodedInferRequest,
  head: { modelName: string; modelVersion: string; parameters: Record<string, unknown> },
  outputs: OutputTensor[],
): Record<string, unknown> {
  const asked = m.outputs.length > 0 ? new Set(m.outputs.map((o) => o.name)) : null;
  const typed = parameterValue(m.parameters.binary_data_output) === false;
  const chosen = asked ? outputs.filter((o) => asked.has(o.name)) : outputs;
  const parameters: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(head.parameters)) parameters[k] = inferParameter(k, v);
  return {
    modelName: head.modelName,
    modelVersion: head.modelVersion,
    id: m.id,
    parameters,
    outputs: chosen.map((o) => ({
      name: o.name,
      datatype: oipName(o.type),
      shape: o.shape,
      ...(typed ? { contents: typedContents(o) } : {}),
    })),
    ...(typed ? {} : { rawOutputContents: chosen.map((o) => o.data) }),
  };
}
