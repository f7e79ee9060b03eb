/**
 * Messages between the controller and a gpu-let process (frame headers; tensor bytes travel in frame bodies),
 * and between that process and the isolate of each function it serves.
 *
 * process → controller: `ready` once every function is imported and its model loaded and warmed, or `fatal`;
 * then one `result` per `run`. controller → process: `run` (a batch of one function), `stop`.
 */
import type { Manifest } from "../functions/manifest.ts";
import type { OrtType } from "../functions/tensor.ts";

/** A model input or output as onnxruntime reports it; `-1` marks a symbolic dimension. */
export interface TensorSpec {
  name: string;
  type: OrtType;
  shape: number[];
  /** BYTES elements that may be any bytes, not only UTF-8 text (an app's base64 input, e.g. an image). */
  anyBytes?: boolean;
}

/** Model signature plus whether requests can be stacked along dimension 0. */
export interface ModelInfo {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Every input and output has a symbolic leading dimension, so requests can be concatenated on it. */
  batchable: boolean;
}

/** A tensor inside a frame body: `offset`/`bytes` locate its data in the body. */
export interface WireTensor {
  name: string;
  type: OrtType;
  shape: number[];
  offset: number;
  bytes: number;
}

/** One function of a gpu-let, as its process is told it. */
export interface FunctionConfig {
  /** The function's name (logs and errors). */
  name: string;
  /** Its folder: the only files its code may read, besides its model. */
  functionDir: string;
  functionFile: string;
  modelFile: string;
  warmBatches: number[];
  manifest: Manifest;
}

/** What a gpu-let process is told at start (its one command-line argument, JSON). */
export interface WorkerConfig {
  socket: string;
  /** onnxruntime's intra-op threads per session (the gpu-let's cores). */
  threads: number;
  /** The onnxruntime N-API binding: the only library a function's isolate may load. */
  bindingPath: string;
  /** Run on CUDA device 0 of the process's `CUDA_VISIBLE_DEVICES` (its GPU), never on the CPU. */
  cuda?: boolean;
  /** The functions it serves, taking turns; `RunMessage.fn` indexes this list. */
  functions: FunctionConfig[];
}

/** One function of a gpu-let, loaded and warm. */
export interface FunctionReady {
  model: ModelInfo;
  /** Measured batch latency (ms) at each warmed batch size. */
  warmLatencyMs: Record<string, number>;
}

export interface ReadyMessage {
  type: "ready";
  pid: number;
  /** In the order of `WorkerConfig.functions`. */
  functions: FunctionReady[];
}

export interface FatalMessage {
  type: "fatal";
  stage: "import" | "validate" | "load" | "warmup";
  error: string;
}

/** Where some bytes lie in a frame's body. */
export interface ByteRange {
  offset: number;
  bytes: number;
}

/**
 * One request of a batch: a JSON body for the function (its UTF-8 bytes in the frame body, unparsed: the
 * worker parses and validates it), or raw model tensors.
 */
export type RunItem =
  | { id: number; kind: "json"; body: ByteRange }
  | { id: number; kind: "tensors"; inputs: WireTensor[] };

export interface RunMessage {
  type: "run";
  batchId: number;
  /** Which of the gpu-let's functions (index into `WorkerConfig.functions`). */
  fn: number;
  items: RunItem[];
}

/** One request's answer inside a result: the function's JSON answer as UTF-8 bytes in the frame body, or tensors. */
export type ItemResult =
  | { id: number; ok: true; json: ByteRange }
  | { id: number; ok: true; outputs: WireTensor[] }
  | { id: number; ok: false; status: number; error: string };

export interface ResultMessage {
  type: "result";
  batchId: number;
  items: ItemResult[];
  /** Rows that went through the model. */
  rows: number;
  /** Time inside the model (ms) and in the worker overall (ms). */
  computeMs: number;
  workerMs: number;
}

export interface StopMessage {
  type: "stop";
}

export type WorkerToController = ReadyMessage | FatalMessage | ResultMessage;
export type ControllerToWorker = RunMessage | StopMessage;

/** Process → function isolate: load and warm (`init`), then batches. */
export type ToIsolate =
  | { type: "init"; config: FunctionConfig; threads: number; cuda: boolean }
  | { type: "run"; header: RunMessage; body: Uint8Array };

/**
 * Function isolate → process. `exit`: its code called `Deno.exit` (an isolate ending raises no event, so it
 * says so first, and the process ends with that code: the controller restarts the gpu-let).
 */
export type FromIsolate =
  | { type: "ready"; ready: FunctionReady }
  | { type: "fatal"; stage: FatalMessage["stage"]; error: string }
  | { type: "result"; header: ResultMessage; body: Uint8Array }
  | { type: "exit"; code: number };
