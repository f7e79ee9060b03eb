/**
 * Tensor element types: Open Inference Protocol datatype names, onnxruntime type names, typed arrays, and
 * the OIP serialisation of BYTES (string) tensors.
 */

/** onnxruntime-node's numeric tensor types. */
export type NumericType =
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

/** onnxruntime-node's tensor types this platform serves: the numeric ones and `string` (OIP BYTES). */
export type OrtType = NumericType | "string";

/** Open Inference Protocol datatype names. */
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
  | "FP64"
  | "BYTES";

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
  oip: Exclude<OipDatatype, "BYTES">;
  bytes: number;
  make: (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;
  alloc: (length: number) => TensorData;
}

/** The numeric types: OIP name, element size, typed-array constructors. */
export const TYPES: Record<NumericType, TypeInfo> = {
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

const BY_OIP = new Map<string, OrtType>([
  ...Object.entries(TYPES).map(([k, v]) => [v.oip, k as OrtType] as const),
  ["BYTES", "string"],
]);

/** The onnxruntime type for an OIP datatype name, or undefined if it is not one we serve. */
export function ortTypeOf(datatype: string): OrtType | undefined {
  return BY_OIP.get(datatype);
}

/** The OIP datatype name of an onnxruntime type. */
export function oipName(type: OrtType): OipDatatype {
  return type === "string" ? "BYTES" : TYPES[type].oip;
}

/** True if `t` names an onnxruntime type this platform serves. */
export function isOrtType(t: string): t is OrtType {
  return t in TYPES || t === "string";
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A numeric tensor (data: a typed array view) or a string one (data: its elements, UTF-8 text). */
export type Tensor =
  | { type: NumericType; dims: number[]; data: TensorData }
  | { type: "string"; dims: number[]; data: string[] };

/**
 * Bytes of a tensor of `count` zeros in wire form: a numeric one's elements, or a BYTES one's empty strings
 * (each a zero length, 4 zero bytes).
 */
export function zeroByteLength(type: OrtType, count: number): number {
  return count * (type === "string" ? 4 : TYPES[type].bytes);
}

/** The data of a tensor of `count` zeros: a typed array, or (`string`) empty strings. */
export function zeroData(type: OrtType, count: number): TensorData | string[] {
  return type === "string" ? new Array<string>(count).fill("") : TYPES[type].alloc(count);
}

/** A malformed BYTES tensor: what is wrong with its bytes. */
export class BadBytesTensor extends Error {}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Elements in the OIP binary form of BYTES: each a 4-byte little-endian length, then its bytes. This is
 * how BYTES travel in binary request bodies, gRPC raw contents and frames to gpu-lets.
 */
export function encodeBytesElements(elements: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === "string" ? utf8.encode(e) : e));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.byteLength, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.byteLength, true);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return out;
}

/**
 * The elements of a BYTES tensor in OIP binary form, as views into `bytes`. Throws {@link BadBytesTensor}
 * when the lengths run past the end, or `count` is given and the bytes hold another number of elements.
 */
export function splitBytesElements(bytes: Uint8Array, count?: number): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) {
      throw new BadBytesTensor(`element ${out.length}: ${bytes.byteLength - at} bytes left, too few for its length`);
    }
    const n = view.getUint32(at, true);
    if (at + 4 + n > bytes.byteLength) {
      throw new BadBytesTensor(`element ${out.length}: length ${n} runs past the end of the data`);
    }
    out.push(bytes.subarray(at + 4, at + 4 + n));
    at += 4 + n;
    if (count !== undefined && out.length > count) break;
  }
  if (count !== undefined && out.length !== count) {
    throw new BadBytesTensor(
      `holds ${out.length > count ? "more than " : ""}${out.length} elements, its shape needs ${count}`,
    );
  }
  return out;
}

/**
 * The elements of a BYTES tensor as text. onnxruntime's string tensors hold UTF-8 text, so an element that
 * is not valid UTF-8 is refused ({@link BadBytesTensor}) rather than silently altered.
 */
export function bytesElementsToStrings(bytes: Uint8Array, count?: number): string[] {
  return splitBytesElements(bytes, count).map((e, i) => {
    try {
      return strictUtf8.decode(e);
    } catch {
      throw new BadBytesTensor(`element ${i} is not valid UTF-8 (onnxruntime string tensors hold text)`);
    }
  });
}
