/**
 * Tensor element types: Open Inference Protocol datatype names, onnxruntime type names, typed arrays.
 */

/** onnxruntime-node's numeric tensor types. */
export type OrtType =
  | "bool"
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "uint64"
  | "int64"
  | "float16"
  | "float32"
  | "float64";

/** Open Inference Protocol datatype names for the numeric types. */
export type OipDatatype =
  | "BOOL"
  | "UINT8"
  | "INT8"
  | "UINT16"
  | "INT16"
  | "UINT32"
  | "INT32"
  | "UINT64"
  | "INT64"
  | "FP16"
  | "FP32"
  | "FP64";

/** Any typed array that backs a numeric tensor. */
export type TensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float16Array
  | Float32Array
  | Float64Array;

interface TypeInfo {
  oip: OipDatatype;
  bytes: number;
  make: (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;
  alloc: (length: number) => TensorData;
}

export const TYPES: Record<OrtType, TypeInfo> = {
  bool: { oip: "BOOL", bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n), alloc: (n) => new Uint8Array(n) },
  uint8: { oip: "UINT8", bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n), alloc: (n) => new Uint8Array(n) },
  int8: { oip: "INT8", bytes: 1, make: (b, o, n) => new Int8Array(b, o, n), alloc: (n) => new Int8Array(n) },
  uint16: { oip: "UINT16", bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n), alloc: (n) => new Uint16Array(n) },
  int16: { oip: "INT16", bytes: 2, make: (b, o, n) => new Int16Array(b, o, n), alloc: (n) => new Int16Array(n) },
  uint32: { oip: "UINT32", bytes: 4, make: (b, o, n) => new Uint32Array(b, o, n), alloc: (n) => new Uint32Array(n) },
  int32: { oip: "INT32", bytes: 4, make: (b, o, n) => new Int32Array(b, o, n), alloc: (n) => new Int32Array(n) },
  uint64: {
    oip: "UINT64",
    bytes: 8,
    make: (b, o, n) => new BigUint64Array(b, o, n),
    alloc: (n) => new BigUint64Array(n),
  },
  int64: {
    oip: "INT64",
    bytes: 8,
    make: (b, o, n) => new BigInt64Array(b, o, n),
    alloc: (n) => new BigInt64Array(n),
  },
  float16: {
    oip: "FP16",
    bytes: 2,
    make: (b, o, n) => new Float16Array(b, o, n),
    alloc: (n) => new Float16Array(n),
  },
  float32: {
    oip: "FP32",
    bytes: 4,
    make: (b, o, n) => new Float32Array(b, o, n),
    alloc: (n) => new Float32Array(n),
  },
  float64: {
    oip: "FP64",
    bytes: 8,
    make: (b, o, n) => new Float64Array(b, o, n),
    alloc: (n) => new Float64Array(n),
  },
};

const BY_OIP = new Map<string, OrtType>(Object.entries(TYPES).map(([k, v]) => [v.oip, k as OrtType]));

/** The onnxruntime type for an OIP datatype name, or undefined if it is not a numeric type we serve. */
export function ortTypeOf(datatype: string): OrtType | undefined {
  return BY_OIP.get(datatype);
}

/** True if `t` names a numeric onnxruntime type. */
export function isOrtType(t: string): t is OrtType {
  return t in TYPES;
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A numeric tensor: element type, shape, and its data (a typed array view). */
export interface Tensor {
  type: OrtType;
  dims: number[];
  data: TensorData;
}
