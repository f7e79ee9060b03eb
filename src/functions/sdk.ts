/**
 * The function SDK: what `functions/<name>/function.ts` imports as `"gpulet"`.
 *
 * A function is a model plus, optionally, a JSON interface: `input` (a zod schema of the request body),
 * `preprocess` (body → model input tensors for this one item) and `postprocess` (this item's output tensors →
 * JSON). Without them the function serves Open Inference Protocol tensors only. Functions run inside a
 * sandboxed gpu-let worker, never in the controller.
 */
import { z } from "zod";
import type { NumericType, OrtType, Tensor, TensorData } from "./tensor.ts";

export { z };
export type { NumericType, OrtType, Tensor, TensorData };

/** Named tensors: model inputs or outputs. */
export type Tensors = Record<string, Tensor>;

/** The model session as a function's `execute` hook sees it. */
export interface ModelRunner {
  /** Runs the model once on the given feeds. */
  run(feeds: Tensors): Promise<Tensors>;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

/** What `defineFunction` takes. `I` is the parsed request body, `O` the JSON answer. */
export interface FunctionDefinition<I = unknown, O = unknown> {
  /** A zoo model name (`resource/models/<model>.onnx`) or a `.onnx` path inside the function's folder. */
  model: string;
  /** Latency objective in ms, measured end to end inside the platform. */
  sloMs: number;
  /** Largest batch (in rows) the function may be run at. Default 32. */
  maxBatch?: number;
  description?: string;
  /** Schema of the JSON body of `POST /functions/{name}/invoke`. */
  input?: z.ZodType<I>;
  /** A valid body, used to warm the worker up when the model has dynamic non-batch dimensions. */
  example?: I;
  /** One request body → its model input tensors (leading dimension = rows this request adds to the batch). */
  preprocess?: (input: I) => Tensors | Promise<Tensors>;
  /** One request's slice of the output tensors → its JSON answer. */
  postprocess?: (outputs: Tensors, input: I) => O | Promise<O>;
  /**
   * Optional custom execution of a batch of preprocessed items (e.g. a recurrent model run step by step).
   * The default concatenates the items along dimension 0, runs the model once and splits the outputs.
   */
  execute?: (items: Tensors[], model: ModelRunner) => Promise<Tensors[]>;
}

/** Brand that marks a definition made by {@link defineFunction}. */
export const FUNCTION_BRAND: unique symbol = Symbol.for("gpulet.function");

/** A definition checked by {@link defineFunction}. */
export type DefinedFunction<I = unknown, O = unknown> = FunctionDefinition<I, O> & { [FUNCTION_BRAND]: true };

/** Declares a function. Checks the parts that can be checked without running it. */
export function defineFunction<I, O>(def: FunctionDefinition<I, O>): DefinedFunction<I, O> {
  if (typeof def.model !== "string" || def.model.length === 0) throw new TypeError("defineFunction: model is required");
  if (!(typeof def.sloMs === "number" && def.sloMs > 0)) throw new TypeError("defineFunction: sloMs must be > 0");
  if (def.preprocess && !def.input) throw new TypeError("defineFunction: preprocess needs an input schema");
  return { ...def, [FUNCTION_BRAND]: true };
}

/** Makes a tensor: numeric from a typed array, or `string` (OIP BYTES) from text. `dims` must match `data.length`. */
export function tensor(type: "string", data: string[], dims: number[]): Tensor;
export function tensor(type: NumericType, data: TensorData, dims: number[]): Tensor;
export function tensor(type: OrtType, data: TensorData | string[], dims: number[]): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== data.length) {
    throw new RangeError(`tensor: dims ${JSON.stringify(dims)} need ${n} elements, got ${data.length}`);
  }
  if ((type === "string") !== Array.isArray(data)) {
    throw new TypeError(
      `tensor: a ${type} tensor takes ${type === "string" ? "an array of strings" : "a typed array"}`,
    );
  }
  return { type, data, dims } as Tensor;
}

/** True if `x` is a definition made by {@link defineFunction} (what `function.ts` must default-export). */
export function isDefinedFunction(x: unknown): x is DefinedFunction {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[FUNCTION_BRAND] === true;
}

export {
  type AppContext,
  type AppDefinition,
  AppInputError,
  type AppStageDefinition,
  type AppTensors,
  defineApp,
  StageError,
} from "./app.ts";
