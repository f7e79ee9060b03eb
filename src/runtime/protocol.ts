/**
 * Messages between the controller and a gpu-let worker (frame headers; tensor bytes travel in frame bodies).
 *
 * worker → controller: `ready` once the function is imported and the model loaded and warmed, or `fatal`;
 * then one `result` per `run`. controller → worker: `run` (a batch), `stop`.
 */
import type { Manifest } from "../functions/manifest.ts";
import type { OrtType } from "../functions/tensor.ts";

/** A model input or output as onnxruntime reports it; `-1` marks a symbolic dimension. */
export interface TensorSpec {
  name: string;
  type: OrtType;
  shape: number[];
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

/** What the worker is told at start (its one command-line argument, JSON). */
export interface WorkerConfig {
  socket: string;
  functionFile: string;
  modelFile: string;
  threads: number;
  warmBatches: number[];
  manifest: Manifest;
  /** Run on CUDA device 0 of the worker's `CUDA_VISIBLE_DEVICES` (its GPU), never on the CPU. */
  cuda?: boolean;
}

export interface ReadyMessage {
  type: "ready";
  pid: number;
  model: ModelInfo;
  /** Measured batch latency (ms) at each warmed batch size. */
  warmLatencyMs: Record<string, number>;
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
