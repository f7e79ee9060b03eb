/**
 * What the HTTP and gRPC front ends share, so a request means the same on both: the lookup of the function
 * or app a request names, the error a failed answer becomes, the timing parameters of an answer and the
 * random-weights mark. Protocol-free: each front end turns an {@link HttpError} into its own status.
 */
import type { ErrorAnswer, OutputTensor, Timing } from "../admission/request.ts";
import { traceRequest } from "../observability/tracing.ts";
import type { AppDeployment } from "../controller/app_deployment.ts";
import type { Controller } from "../controller/controller.ts";
import type { Deployment } from "../controller/deployment.ts";
import { FUNCTION_NAME_RULE, FunctionName } from "../functions/manifest.ts";
import { hasRandomWeights } from "../models/zoo.ts";
import type { AppTensorsManifest } from "../functions/manifest.ts";
import { encodeBytesElements, splitBytesElements } from "../functions/tensor.ts";
import type { ModelInfo } from "../runtime/protocol.ts";
import {
  BadTensorRequest,
  type DecodedInputs,
  decodeInferRequest,
  type InferRequest,
  modelMetadata,
} from "./oip_codec.ts";
import { concatBytes } from "../runtime/bytes.ts";
import { encodeBase64 } from "../functions/bundle.ts";

const SERVER_VERSION = "0.1.0";

/** Server metadata, the same on HTTP and gRPC: its name, version and the protocol extensions it serves. */
export function serverInfo() {
  return { name: "gpulet", version: SERVER_VERSION, extensions: ["binary_tensor_data", "model_repository"] };
}

/** A failure with an HTTP status (gRPC maps it to a status code), answered with its message. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** `name` if it is a valid function name; a 400 that says the rule otherwise. */
export function checkedName(name: string): string {
  if (!FunctionName.safeParse(name).success) {
    throw new HttpError(400, `invalid function name ${JSON.stringify(name.slice(0, 80))}: ${FUNCTION_NAME_RULE}`);
  }
  return name;
}

/**
 * The live deployment of the function `name` (of `version`, when given): 400 for an invalid name, 404 if
 * unknown or another version, 503 while the controller is still restoring it after a restart.
 */
export function liveFunction(controller: Controller, name: string, version?: string): Deployment {
  // Only valid names are ever deployed: the name check is needed only when the lookup fails.
  const dep = controller.get(name);
  if (!dep) {
    checkedName(name);
    // Right after a restart the function may just not be back yet: say so rather than "unknown".
    if (controller.restoring) {
      throw new HttpError(503, `gpulet is restoring its deployed functions; "${name}" is not back yet`, {
        "retry-after": "1",
      });
    }
    throw new HttpError(404, `unknown function "${name}"`);
  }
  if (version !== undefined && version !== "" && version !== String(dep.version)) {
    throw new HttpError(404, `function "${name}" has no live version "${version.slice(0, 20)}" (live: ${dep.version})`);
  }
  return dep;
}

/** The live app `name`, if it is one (404 for another version of it). */
export function liveApp(controller: Controller, name: string, version?: string): AppDeployment | undefined {
  const a = controller.getApp(name);
  if (a && version !== undefined && version !== "" && version !== String(a.version)) {
    throw new HttpError(404, `app "${name}" has no live version "${version.slice(0, 20)}" (live: ${a.version})`);
  }
  return a;
}

/** Whether a function's answers come from random weights. */
export function functionHasRandomWeights(dep: Deployment): boolean {
  return hasRandomWeights(dep.record.manifest.model);
}

/** Whether an app's answers do: when any of its stages' do. */
export function appHasRandomWeights(controller: Controller, app: AppDeployment): boolean {
  return app.stages.some((s) => {
    const dep = controller.get(s.function);
    return dep !== undefined && functionHasRandomWeights(dep);
  });
}

/** A failed answer as an error, with `retry-after` when the answer gives one and `extra` headers. */
export function answerError(a: ErrorAnswer, extra: Record<string, string> = {}): HttpError {
  const headers = { ...extra };
  if (a.retryAfterS !== undefined) headers["retry-after"] = String(a.retryAfterS);
  return new HttpError(a.status, a.error, headers);
}

/** A time in ms as answers report it: to the microsecond. */
const ms = (x: number) => Math.round(x * 1000) / 1000;

/** Where an answer's time went as OIP response parameters (scalars, as the protocol wants), in ms. */
export function timingParameters(t: Timing): Record<string, number> {
  return {
    queue_ms: ms(t.queueMs),
    batch_wait_ms: ms(t.batchWaitMs),
    worker_ms: ms(t.workerMs),
    compute_ms: ms(t.computeMs),
    batch_rows: t.batchRows,
  };
}

/** Compares two strings in time independent of where they differ. */
export function safeTokenEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  for (let i = 0; i < Math.max(ea.length, eb.length); i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}

/** An app's model metadata in OIP form: platform `gpulet_app`, its tensor interface's BYTES tensors (or none). */
export function appMetadata(app: AppDeployment) {
  const t = app.record.manifest.tensors;
  const info = t ? appModelInfo(t) : { inputs: [], outputs: [], batchable: false };
  return { ...modelMetadata(app.name, [String(app.version)], info), platform: "gpulet_app" };
}

/** An app's tensor interface as a model signature: BYTES tensors of one element each, not batchable. */
function appModelInfo(t: AppTensorsManifest): ModelInfo {
  const spec = (name: string) => ({ name, type: "string" as const, shape: [1] });
  return {
    inputs: Object.entries(t.inputs).map(([name, kind]) => ({ ...spec(name), anyBytes: kind === "base64" })),
    outputs: Object.keys(t.outputs).map(spec),
    batchable: false,
  };
}

/**
 * The JSON body of an app request made from its BYTES input tensors (as `decodeInferRequest` encoded them for
 * {@link appModelInfo}): each becomes the field of its name, in base64 or as text as the app declares.
 */
function appBodyOf(t: AppTensorsManifest, decoded: DecodedInputs): Uint8Array {
  // Located by offset: the parts hold the padding between tensors too.
  const frame = concatBytes(decoded.bytes);
  const body: Record<string, string> = {};
  decoded.inputs.forEach((input) => {
    const [element] = splitBytesElements(frame.subarray(input.offset, input.offset + input.bytes), 1);
    body[input.name] = t.inputs[input.name] === "base64" ? encodeBase64(element) : new TextDecoder().decode(element); // checked as UTF-8 already
  });
  return new TextEncoder().encode(JSON.stringify(body));
}

/** An app's JSON answer as its BYTES output tensors; a missing field, or a `text` one that is no string, is a 500. */
function appOutputsOf(t: AppTensorsManifest, answer: Uint8Array): OutputTensor[] {
  const value = JSON.parse(new TextDecoder().decode(answer)) as Record<string, unknown>;
  return Object.entries(t.outputs).map(([name, kind]) => {
    const field = value?.[name];
    if (field === undefined) throw new HttpError(500, `the app's answer has no field "${name}" for its output tensor`);
    if (kind === "text" && typeof field !== "string") {
      throw new HttpError(500, `the app's answer field "${name}" is not a string (its output tensor is text)`);
    }
    const element = kind === "text" ? field as string : JSON.stringify(field);
    return { name, type: "string", shape: [1], data: encodeBytesElements([element]) };
  });
}

/** An app's tensor interface; a 400 that says how to call it when it has none. */
export function appTensorsOf(app: AppDeployment): AppTensorsManifest {
  const tensors = app.record.manifest.tensors;
  if (!tensors) {
    throw new HttpError(
      400,
      `"${app.name}" is an app without a tensor interface: POST /functions/${app.name}/invoke with its JSON body`,
    );
  }
  return tensors;
}

/**
 * Runs an app request that came as tensors (HTTP or gRPC infer): its BYTES inputs become the app's JSON
 * body, its JSON answer the BYTES outputs. 400 when the app has no tensor interface or the tensors do not
 * match it. `signal`: the client went away (the request is dropped, its pending stage calls too).
 */
export async function inferApp(
  controller: Controller,
  app: AppDeployment,
  req: InferRequest,
  binary: Uint8Array,
  maxElements: number,
  signal?: AbortSignal,
): Promise<{ outputs: OutputTensor[]; parameters: Record<string, unknown> }> {
  const tensors = appTensorsOf(app);
  let decoded;
  try {
    decoded = decodeInferRequest(req, appModelInfo(tensors), maxElements, binary);
  } catch (e) {
    if (e instanceof BadTensorRequest) throw new HttpError(400, e.message);
    throw e;
  }
  const answer = await app.invoke(appBodyOf(tensors, decoded), signal);
  if ("error" in answer) throw answerError(answer);
  if (!("json" in answer)) throw new HttpError(500, "the app answered tensors");
  return {
    outputs: appOutputsOf(tensors, answer.json),
    parameters: {
      total_ms: ms(answer.timing.totalMs),
      ...(appHasRandomWeights(controller, app) ? { weights: "random" } : {}),
    },
  };
}

/** A JSON invoke's answer: the function's (or app's) JSON and how it was computed. */
export interface JsonInvokeAnswer {
  json: Uint8Array;
  timing: Timing;
  /** An app answered (its timing has the total only). */
  app: boolean;
  randomWeights: boolean;
}

/**
 * One JSON invoke of a function or an app by name (`POST /functions/{name}/invoke`, and the async
 * invocations that run later): the body goes as bytes, the gpu-let or app process parses and validates it.
 * `signalFor` gives the request's disconnect signal once its target is known. A failed answer is thrown as
 * an {@link HttpError}; `errorHeaders` adds to it.
 */
export async function invokeJson(
  controller: Controller,
  name: string,
  body: Uint8Array,
  signalFor: (target: { deadlineMs: number }) => AbortSignal | undefined = () => undefined,
  errorHeaders: (a: ErrorAnswer) => Record<string, string> = () => ({}),
): Promise<JsonInvokeAnswer> {
  const app = controller.getApp(name);
  if (app) {
    const answer = await app.invoke(body, signalFor(app));
    if ("error" in answer) throw answerError(answer, errorHeaders(answer));
    if (!("json" in answer)) throw new HttpError(500, "the app answered tensors");
    return { json: answer.json, timing: answer.timing, app: true, randomWeights: appHasRandomWeights(controller, app) };
  }
  const dep = liveFunction(controller, name);
  if (!dep.record.manifest.json) {
    throw new HttpError(400, `function "${dep.name}" takes tensors only: use POST /v2/models/${dep.name}/infer`);
  }
  const answer = await dep.submit({ kind: "json", body }, 1, signalFor(dep));
  if ("error" in answer) throw answerError(answer, errorHeaders(answer));
  if (!("json" in answer)) throw new HttpError(500, "the worker answered tensors to a JSON request");
  traceRequest(dep.name, dep.version, answer.timing);
  return { json: answer.json, timing: answer.timing, app: false, randomWeights: functionHasRandomWeights(dep) };
}

/** What a tensor request to a function needs besides itself (see {@link inferFunction}). */
export interface FunctionInferOptions {
  /** Largest number of elements in one input tensor. */
  maxElements: number;
  /** Whether the function runs on simulated devices (its answers then say so). */
  simulated: boolean;
  /** When the request was whole in hand (performance.now() ms): its deadline runs from then. */
  arrivedAt: number;
  /** The client went away: the request leaves the queue, a late answer is dropped. */
  signal?: AbortSignal;
  /** The client's own deadline (ms from `arrivedAt`), when it has one; the SLO when sooner. */
  deadlineMs?: number;
  /** Headers a failed answer carries besides `retry-after` (HTTP's `Server-Timing`). */
  errorHeaders?: (a: ErrorAnswer) => Record<string, string>;
}

/**
 * One tensor request to a function, the same on HTTP and gRPC: checked against its model (400), submitted
 * to its admission and batching, traced; its outputs with the OIP response parameters (timing, and the
 * simulated and random-weights marks). A failed answer is thrown as an {@link HttpError}.
 */
export async function inferFunction(
  dep: Deployment,
  req: InferRequest,
  binary: Uint8Array,
  o: FunctionInferOptions,
): Promise<{ outputs: OutputTensor[]; timing: Timing; parameters: Record<string, unknown> }> {
  let decoded;
  try {
    decoded = decodeInferRequest(req, dep.model, o.maxElements, binary);
  } catch (e) {
    if (e instanceof BadTensorRequest) throw new HttpError(400, e.message);
    throw e;
  }
  if (o.deadlineMs !== undefined && o.deadlineMs <= 0) {
    throw new HttpError(504, "the call's deadline passed before it was queued");
  }
  const answer = await dep.submit(
    { kind: "tensors", inputs: decoded.inputs, bytes: decoded.bytes },
    decoded.rows,
    o.signal,
    o.arrivedAt,
    Math.min(dep.deadlineMs, o.deadlineMs ?? Infinity),
  );
  if ("error" in answer) throw answerError(answer, o.errorHeaders?.(answer));
  if (!("outputs" in answer)) throw new HttpError(500, "the worker answered JSON to a tensor request");
  traceRequest(dep.name, dep.version, answer.timing);
  return {
    outputs: answer.outputs,
    timing: answer.timing,
    parameters: {
      ...timingParameters(answer.timing),
      // A simulated answer never passes for a real inference.
      ...(o.simulated ? { simulated: true } : {}),
      ...(functionHasRandomWeights(dep) ? { weights: "random" } : {}),
    },
  };
}
