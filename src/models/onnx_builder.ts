/**
 * A small ONNX graph builder on top of `npm:onnx-proto` (protobufjs static code for the ONNX schema).
 * Weights come from a seeded PRNG so every build of a model is byte-for-byte the same.
 */
import onnxProto from "onnx-proto";
import { seededRandom } from "../planner/random.ts";

// onnx-proto ships untyped static code; this is the slice of it we use.
interface OnnxNamespace {
  ModelProto: {
    create(v: unknown): unknown;
    encode(m: unknown): { finish(): Uint8Array };
  };
}
const onnx = (onnxProto as unknown as { onnx: OnnxNamespace }).onnx;

/** ONNX TensorProto element types we use. */
export const ElemType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  string: 8,
} as const;
export type ElemTypeName = keyof typeof ElemType;

const ELEM_NAMES = Object.fromEntries(Object.entries(ElemType).map(([k, v]) => [v, k])) as Record<
  number,
  ElemTypeName
>;

/** A graph input or output: name, element type, dims (-1 where symbolic). */
export interface TensorSignature {
  name: string;
  type: ElemTypeName;
  shape: number[];
}

const AttrType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7, FLOATS: 6, STRINGS: 8 } as const;

/** An attribute value: int, int list, string, string list, or `{ f }` for a float. */
export type Attr = number | number[] | string | string[] | { f: number };

interface NodeProto {
  opType: string;
  domain?: string;
  input: string[];
  output: string[];
  name: string;
  attribute: unknown[];
}

function valueInfo(name: string, dims: (number | string)[], elemType: number) {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Builds one ONNX graph: inputs, initializers (weights), nodes, outputs. */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  private readonly initializers: unknown[] = [];
  private readonly inputs: unknown[] = [];
  private readonly outputs: unknown[] = [];
  /** Number of trainable parameters added with {@link weight}. */
  params = 0;
  private counter = 0;
  private readonly rand: () => number;
  /** A dry builder only counts: weights get no data, and it cannot encode (architecture reports, tests). */
  readonly dry: boolean;

  constructor(seed = 42, opts: { dry?: boolean } = {}) {
    this.rand = seededRandom(seed);
    this.dry = opts.dry ?? false;
  }

  /** A fresh unique tensor name with the given prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  /** Declares a graph input. Use a string dim (e.g. `"N"`) for a symbolic batch dimension. */
  input(name: string, dims: (number | string)[], type: ElemTypeName = "float32"): string {
    this.inputs.push(valueInfo(name, dims, ElemType[type]));
    return name;
  }

  /** Declares a graph output; the tensor `name` must be produced by a node. */
  output(name: string, dims: (number | string)[], type: ElemTypeName = "float32"): void {
    this.outputs.push(valueInfo(name, dims, ElemType[type]));
  }

  /**
   * The declared inputs and outputs as a worker would report them after loading (symbolic dims are -1),
   * without building the model: `sim` devices serve a model by its signature alone.
   */
  signature(): { inputs: TensorSignature[]; outputs: TensorSignature[] } {
    const of = (vs: unknown[]) =>
      (vs as ReturnType<typeof valueInfo>[]).map((v) => ({
        name: v.name,
        type: ELEM_NAMES[v.type.tensorType.elemType],
        shape: v.type.tensorType.shape.dim.map((d) => ("dimValue" in d ? d.dimValue! : -1)),
      }));
    return { inputs: of(this.inputs), outputs: of(this.outputs) };
  }

  /** A float32 weight, ~N(0, std) from the seeded PRNG, or filled with `constant`. */
  weight(prefix: string, dims: number[], std: number, constant?: number): string {
    const size = dims.reduce((a, b) => a * b, 1);
    this.params += size;
    const name = this.fresh(prefix);
    if (this.dry) return name;
    const data = new Float32Array(size);
    if (constant !== undefined) data.fill(constant);
    else {
      // Sum of three uniforms: cheap, bounded, close enough to normal for random weights.
      for (let i = 0; i < size; i++) data[i] = (this.rand() + this.rand() + this.rand() - 1.5) * 2 * std;
    }
    this.initializers.push({ name, dims, dataType: ElemType.float32, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** A float32 constant (scales, clip bounds). Not counted as parameters. */
  float(prefix: string, values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh(prefix);
    const data = new Float32Array(values);
    this.initializers.push({ name, dims, dataType: ElemType.float32, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** An int64 constant (shapes, axes). Not counted as parameters. */
  int64(prefix: string, values: number[]): string {
    const name = this.fresh(prefix);
    const data = new BigInt64Array(values.map(BigInt));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: ElemType.int64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  /** Adds a node (of operator set `domain`, default ONNX's own); returns the name of its first output. */
  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, outputName?: string, domain = ""): string {
    const out = outputName ?? this.fresh(type.toLowerCase());
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string")) {
        return { name, type: AttrType.STRINGS, strings: v.map((x) => new TextEncoder().encode(x)) };
      }
      if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
      if (typeof v === "string") return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
      if (typeof v === "object") return { name, type: AttrType.FLOAT, f: v.f };
      return { name, type: AttrType.INT, i: v };
    });
    const node: NodeProto = { opType: type, input: inputs, output: [out], name: this.fresh("node"), attribute };
    if (domain) node.domain = domain;
    this.nodes.push(node);
    return out;
  }

  /** Serialises the model (opset 17 by default; `domains`: other operator sets it uses, e.g. `ai.onnx.ml`). */
  encode(graphName: string, opset = 17, domains: Record<string, number> = {}): Uint8Array {
    if (this.dry) throw new Error("a dry GraphBuilder only counts; build without { dry: true } to encode");
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "gpulet",
      opsetImport: [
        { domain: "", version: opset },
        ...Object.entries(domains).map(([domain, version]) => ({ domain, version })),
      ],
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
