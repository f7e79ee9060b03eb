/**
 * The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, `inference.proto` beside this
 * file), on its own port: Deno's HTTP server cannot send HTTP/2 trailers, so grpc-js serves it. Requests go
 * through the same lookups, validation, admission and batching as HTTP ones (a gRPC and an HTTP request
 * may share a batch) and fail with the same messages, as gRPC status codes. A call's deadline
 * (`grpc-timeout`) becomes its request's deadline when sooner than the SLO; a cancelled call leaves the
 * queue. The repository RPCs take the admin token as `authorization: Bearer <token>` metadata.
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import type { Controller } from "../../controller/controller.ts";
import { DeployError } from "../../controller/controller.ts";
import { describeZodError } from "../../functions/manifest.ts";
import {
  appMetadata,
  checkedName,
  HttpError,
  inferApp,
  inferFunction,
  liveApp,
  liveFunction,
  safeTokenEqual,
  serverInfo,
} from "../data_plane.ts";
import { BadTensorRequest, InferRequest, modelMetadata } from "../oip_codec.ts";
import {
  type DecodedInferRequest,
  InferenceService,
  inferRequestOf,
  inferResponseOf,
  ModelInferRequest,
  ModelInferResponse,
  parameterValue,
} from "./codec.ts";
import type protobuf from "protobufjs";

/** Where and how the gRPC server listens. */
export interface GrpcOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Required (as `authorization: Bearer <token>`) on the repository RPCs when set. */
  adminToken?: string;
  /** Largest message either way (bytes): the HTTP side's body limit. */
  maxMessageBytes: number;
  /** Largest number of elements in one input tensor. */
  maxTensorElements: number;
  /**
   * In a cluster: where a function's infer call goes (the cluster's front door). It is given the call as
   * `POST {@link GRPC_INFER_PATH}{name}` with the encoded `ModelInferRequest`; what it answers is the encoded
   * response, or a JSON error with its HTTP status. Absent: every call is served here.
   */
  route?: (req: Request) => Promise<Response>;
  /** The local half of inference (made here when not given). */
  inference?: GrpcInference;
}

/** The path a gRPC infer call travels by between nodes (served by {@link GrpcInference.serveForwarded}). */
export const GRPC_INFER_PATH = "/internal/grpc/infer/";
/** The call's deadline, ms from when it was sent on (absent: none). */
const DEADLINE_HEADER = "x-gpulet-deadline-ms";

/** The gRPC port cannot be had (taken, or not allowed): a setup problem with a fix, not a crash. */
export class GrpcListenError extends Error {}

/** A running gRPC server. */
export interface GrpcServer {
  port: number;
  /** Stops taking calls; calls in flight finish first (bounded by the controller's drain). */
  stop(): Promise<void>;
}

/** The largest HTTP/2 frame the protocol allows (2^24 - 1), and the stream window offered to clients. */
const HTTP2_MAX_FRAME_BYTES = 16_777_215;
const HTTP2_WINDOW_BYTES = 16_777_215;

/** How long open streams may stay after shutdown began, before they are cut. */
const STREAM_CLOSE_GRACE_MS = 2000;

/** gRPC status codes of the HTTP statuses the platform answers with. */
const GRPC_STATUS: Record<number, grpc.status> = {
  400: grpc.status.INVALID_ARGUMENT,
  401: grpc.status.UNAUTHENTICATED,
  404: grpc.status.NOT_FOUND,
  409: grpc.status.FAILED_PRECONDITION,
  413: grpc.status.RESOURCE_EXHAUSTED,
  429: grpc.status.RESOURCE_EXHAUSTED,
  499: grpc.status.CANCELLED,
  500: grpc.status.INTERNAL,
  502: grpc.status.UNAVAILABLE,
  503: grpc.status.UNAVAILABLE,
  504: grpc.status.DEADLINE_EXCEEDED,
};

/** A failure as a gRPC error: its status code, the same message as HTTP, HTTP-only headers as metadata. */
function grpcError(e: unknown): grpc.ServiceError {
  let status = 500, message = e instanceof Error ? e.message : String(e);
  const metadata = new grpc.Metadata();
  if (e instanceof HttpError) {
    status = e.status;
    for (const [k, v] of Object.entries(e.headers)) metadata.set(k, v);
  } else if (e instanceof DeployError) status = e.status;
  else if (e instanceof BadTensorRequest) status = 400;
  else {
    console.error("unhandled gRPC error:", e);
    message = `internal error: ${message}`;
  }
  return Object.assign(new Error(message), {
    code: GRPC_STATUS[status] ?? grpc.status.UNKNOWN,
    details: message,
    metadata,
  });
}

/** A grpc-js service definition for the .proto's service, with protobufjs doing the (de)serialising. */
function serviceDefinition(): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of InferenceService.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType!, res = method.resolvedResponseType!;
    const bytes = (u: Uint8Array) => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));
    def[method.name] = {
      path: `/inference.GRPCInferenceService/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (m: object) => bytes(req.encode(m).finish()),
      requestDeserialize: (b: Buffer) => req.decode(b),
      responseSerialize: (m: object) => bytes(res.encode(m).finish()),
      responseDeserialize: (b: Buffer) => res.decode(b),
      originalName: method.name,
    };
  }
  return def;
}

/** A unary handler from an async function: its value answers the call, its error fails it. */
// deno-lint-ignore no-explicit-any
function unary<Req = any>(
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => unknown | Promise<unknown>,
): grpc.handleUnaryCall<Req, unknown> {
  return (call, callback) => {
    Promise.resolve().then(() => fn(call.request, call)).then(
      (value) => callback(null, value),
      (e) => callback(grpcError(e)),
    );
  };
}

/** Milliseconds left before a call's deadline (Infinity when it has none). */
function remainingMs(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  return at === Infinity ? Infinity : at - Date.now();
}

/**
 * HTTP/2 flow control and frame sizes for large tensors. With the defaults (16 KB frames, 64 KB windows) a
 * 600 KB request crosses Deno's JavaScript HTTP/2 as 37 frames and, with several calls in flight, waits on
 * window updates of one shared 64 KB connection window. Measured on a bare HTTP/2 server here with 600 KB
 * requests: p50 1.71 → 0.84 ms at one client with 16 MiB frames and stream windows, 392 → 1,016 calls/s at
 * 16 with a 16 MiB connection window too. grpc-js 1.14 has no options for them (grpc-node#3058 adds the
 * window), so the settings go into the options it gives `http2.createServer`, and each new session widens
 * its connection window; a grpc-js without those internals keeps its defaults.
 */
function widenHttp2Settings(server: grpc.Server): void {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, number> } };
  if (!internals.commonServerOptions) return;
  internals.commonServerOptions.settings = {
    ...internals.commonServerOptions.settings,
    maxFrameSize: HTTP2_MAX_FRAME_BYTES,
    initialWindowSize: HTTP2_WINDOW_BYTES,
  };
}

/** After binding: every HTTP/2 session the server accepts gets a connection window of {@link HTTP2_WINDOW_BYTES}. */
function widenConnectionWindows(server: grpc.Server): void {
  const internals = server as unknown as {
    http2Servers?: Map<{ on(e: "session", f: (s: Session) => void): void }, unknown>;
  };
  type Session = { setLocalWindowSize?(size: number): void };
  for (const http2Server of internals.http2Servers?.keys() ?? []) {
    http2Server.on("session", (session) => {
      try {
        session.setLocalWindowSize?.(HTTP2_WINDOW_BYTES);
      } catch { /* a closed session: nothing to widen */ }
    });
  }
}

/** A host as the authority part of an address: an IPv6 address in brackets. */
export function hostPart(hostname: string): string {
  return hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
}

/** Typed contents cannot carry FP16: refused before the model runs, not after. */
function checkTypedOutputs(m: DecodedInferRequest, outputs: readonly { name: string; type: string }[]): void {
  if (parameterValue(m.parameters.binary_data_output) !== false) return;
  const asked = m.outputs.length > 0 ? new Set(m.outputs.map((o) => o.name)) : null;
  const fp16 = outputs.find((o) => o.type === "float16" && (!asked || asked.has(o.name)));
  if (fp16) {
    throw new HttpError(400, `output "${fp16.name}" is FP16, which has no typed contents: leave binary_data_output on`);
  }
}

/** A gRPC infer call served here: the local half of `ModelInfer`, also for calls other nodes send here. */
export interface GrpcInference {
  /** Serves one call here, as HTTP's `POST /v2/models/{name}/infer` does it. */
  inferHere(m: DecodedInferRequest, deadlineInMs: number, signal: AbortSignal): Promise<Record<string, unknown>>;
  /**
   * Serves a call a front door sent here (`POST {@link GRPC_INFER_PATH}{name}`, the encoded request): the
   * encoded response, or a JSON error with its status. Every node of a cluster serves these, gRPC port or not.
   */
  serveForwarded(req: Request): Promise<Response>;
}

/** The local half of gRPC inference over a controller. */
export function grpcInference(controller: Controller, opts: { maxTensorElements: number }): GrpcInference {
  const simulated = controller.backend?.kind === "sim";

  /**
   * A gRPC request as the HTTP side's, within the same bounds, checked on the request without its data:
   * protobuf already typed the elements, and walking them in zod would cost more than the rest of decoding.
   */
  const checkedRequest = (m: DecodedInferRequest) => {
    const { req, binary } = inferRequestOf(m);
    const shell = InferRequest.safeParse({ ...req, inputs: req.inputs.map(({ data: _, ...t }) => t) });
    if (!shell.success) throw new HttpError(400, `invalid inference request: ${describeZodError(shell.error)}`);
    return { req, binary };
  };

  /** One inference here, as HTTP's `POST /v2/models/{name}/infer` does it. */
  const inferHere = async (m: DecodedInferRequest, deadlineInMs: number, signal: AbortSignal) => {
    const app = liveApp(controller, m.modelName, m.modelVersion);
    if (app) {
      const { req, binary } = checkedRequest(m);
      const { outputs, parameters } = await inferApp(controller, app, req, binary, opts.maxTensorElements, signal);
      return inferResponseOf(m, { modelName: app.name, modelVersion: String(app.version), parameters }, outputs);
    }
    const dep = liveFunction(controller, m.modelName, m.modelVersion);
    const arrivedAt = performance.now();
    const { req, binary } = checkedRequest(m);
    checkTypedOutputs(m, dep.model.outputs);
    const { outputs, parameters } = await inferFunction(dep, req, binary, {
      maxElements: opts.maxTensorElements,
      simulated,
      arrivedAt,
      signal,
      deadlineMs: deadlineInMs,
    });
    return inferResponseOf(m, { modelName: dep.name, modelVersion: String(dep.version), parameters }, outputs);
  };

  return {
    inferHere,
    serveForwarded: async (req: Request) => {
      try {
        const m = ModelInferRequest.decode(new Uint8Array(await req.arrayBuffer())) as unknown as DecodedInferRequest;
        const deadline = req.headers.get(DEADLINE_HEADER);
        const response = await inferHere(m, deadline === null ? Infinity : Number(deadline), req.signal);
        return new Response(ModelInferResponse.encode(response).finish() as Uint8Array<ArrayBuffer>);
      } catch (e) {
        const err = e instanceof HttpError ? e : new HttpError(400, `bad forwarded call: ${(e as Error).message}`);
        return Response.json({ error: err.message }, { status: err.status });
      }
    },
  };
}

/** Starts the gRPC server over a controller. */
export async function startGrpcServer(controller: Controller, opts: GrpcOptions): Promise<GrpcServer> {
  const { inferHere } = opts.inference ?? grpcInference(controller, opts);

  /**
   * One inference: in a cluster a function's call goes through its front door (served here, or on the node
   * it picks); an app's, and every call on one node, here.
   */
  const infer = async (m: DecodedInferRequest, deadlineInMs: number, signal: AbortSignal) => {
    if (!opts.route || liveApp(controller, m.modelName, m.modelVersion)) {
      return await inferHere(m, deadlineInMs, signal);
    }
    const headers: Record<string, string> = { "content-type": "application/x-protobuf" };
    if (Number.isFinite(deadlineInMs)) headers[DEADLINE_HEADER] = String(Math.max(0, Math.floor(deadlineInMs)));
    const res = await opts.route(
      new Request(`http://gpulet${GRPC_INFER_PATH}${encodeURIComponent(m.modelName)}`, {
        method: "POST",
        headers,
        body: ModelInferRequest.encode(m as unknown as protobuf.Message).finish() as Uint8Array<ArrayBuffer>,
        signal,
      }),
    );
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 200) {
      const text = new TextDecoder().decode(bytes);
      let message = text;
      try {
        message = JSON.parse(text).error ?? text;
      } catch { /* not JSON: the text says it */ }
      throw new HttpError(res.status, message);
    }
    return ModelInferResponse.decode(bytes);
  };

  /** The call's client went away: its request leaves the queue (or its answer is dropped). */
  const cancelSignal = (call: { on(event: "cancelled", listener: () => void): unknown }) => {
    const ac = new AbortController();
    call.on("cancelled", () => ac.abort());
    return ac.signal;
  };

  const requireAdmin = (call: grpc.ServerUnaryCall<unknown, unknown>) => {
    if (!opts.adminToken) return;
    const auth = String(call.metadata.get("authorization")[0] ?? "");
    if (!safeTokenEqual(auth, `Bearer ${opts.adminToken}`)) {
      throw new HttpError(401, "the repository RPCs need `authorization: Bearer <token>` metadata");
    }
  };

  const handlers: grpc.UntypedServiceImplementation = {
    ServerLive: unary(() => ({ live: true })),
    ServerReady: unary(() => ({ ready: controller.ready })),
    ServerMetadata: unary(() => serverInfo()),
    ModelReady: unary<{ name: string; version: string }>(({ name, version }) => {
      const app = liveApp(controller, name, version);
      return { ready: app ? app.ready : liveFunction(controller, name, version).ready };
    }),
    ModelMetadata: unary<{ name: string; version: string }>(({ name, version }) => {
      const app = liveApp(controller, name, version);
      if (app) return appMetadata(app);
      const dep = liveFunction(controller, name, version);
      return modelMetadata(dep.name, [String(dep.version)], dep.model);
    }),
    ModelInfer: unary<DecodedInferRequest>((m, call) => infer(m, remainingMs(call), cancelSignal(call))),
    ModelStreamInfer: (call: grpc.ServerDuplexStream<DecodedInferRequest, unknown>) => {
      const signal = cancelSignal(call);
      let open = 0, ended = false;
      const finish = () => {
        if (ended && open === 0) call.end();
      };
      call.on("data", (m: DecodedInferRequest) => {
        open++;
        infer(m, remainingMs(call), signal).then(
          (response) => ({ inferResponse: response }),
          (e) => ({
            errorMessage: grpcError(e).message,
            inferResponse: { id: m.id, modelName: m.modelName, modelVersion: m.modelVersion },
          }),
        ).then((r) => {
          if (!signal.aborted) call.write(r);
        }).catch((e) => console.error("gRPC stream: a response could not be written:", e)).finally(() => {
          open--;
          finish();
        });
      });
      call.on("end", () => {
        ended = true;
        finish();
      });
    },
    RepositoryIndex: unary<{ ready: boolean }>(async ({ ready }, call) => {
      requireAdmin(call);
      const models = await controller.repositoryIndex();
      return { models: ready ? models.filter((m) => m.state === "READY") : models };
    }),
    RepositoryModelLoad: unary<{ modelName: string }>(async ({ modelName }, call) => {
      requireAdmin(call);
      await controller.load(checkedName(modelName));
      return {};
    }),
    RepositoryModelUnload: unary<{ modelName: string }>(async ({ modelName }, call) => {
      requireAdmin(call);
      await controller.unload(checkedName(modelName));
      return {};
    }),
  };

  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxMessageBytes,
    "grpc.max_send_message_length": opts.maxMessageBytes,
  });
  widenHttp2Settings(server);
  server.addService(serviceDefinition(), handlers);
  const port = await new Promise<number>((resolve, reject) => {
    const address = `${hostPart(opts.hostname)}:${opts.port}`;
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new GrpcListenError(`gRPC cannot listen on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
  widenConnectionWindows(server);
  return {
    port,
    // Calls in flight were answered while the controller drained; open streams are then cut.
    stop: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), STREAM_CLOSE_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
