/**
 * The controller's HTTP API (hono): Open Inference Protocol endpoints, function invoke, admin, metrics.
 * Every error is JSON `{ "error": "..." }` with the status DESIGN.md gives it.
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Timing } from "../admission/request.ts";
import type { Controller } from "../controller/controller.ts";
import { DeployError } from "../controller/controller.ts";
import type { Deployment } from "../controller/deployment.ts";
import { parseBundle } from "../functions/bundle.ts";
import type { AppDeployment } from "../controller/app_deployment.ts";
import { describeZodError } from "../functions/manifest.ts";
import { z } from "zod";
import {
  BadJsonBody,
  bytesNestDeeperThan,
  EMPTY_JSON_BODY,
  MAX_JSON_DEPTH,
  parseJsonBody,
  tooDeepMessage,
} from "../runtime/json_body.ts";
import { registerUi } from "./ui.ts";
import { registerAsync } from "./async_routes.ts";
import type { AsyncCalls } from "../async/call_runner.ts";
import type { Cluster } from "../cluster/cluster.ts";
import {
  appHasRandomWeights,
  appMetadata,
  appTensorsOf,
  checkedName,
  functionHasRandomWeights,
  HttpError,
  inferApp,
  inferFunction,
  invokeJson,
  liveApp,
  liveFunction,
  safeTokenEqual,
  serverInfo,
} from "./data_plane.ts";
import { concatBytes } from "../runtime/bytes.ts";
import {
  BadTensorRequest,
  type EncodedResponse,
  encodeInferResponse,
  HEADER_LENGTH_HEADER,
  InferRequest,
  modelMetadata,
  splitInferBody,
} from "./oip_codec.ts";

export interface ApiOptions {
  /** Bearer token required on /admin/* when set. */
  adminToken?: string;
  /** Largest request body on the data plane (bytes). */
  maxBodyBytes?: number;
  /** Largest deploy bundle (bytes). */
  maxBundleBytes?: number;
  /** Largest number of elements in one input tensor. */
  maxTensorElements?: number;
}

/** Largest data-plane request body (bytes) and gRPC message, unless configured. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Largest input tensor (elements), unless configured. */
export const DEFAULT_MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024;

/** Response header on answers from simulated devices. */
export const SIMULATED_HEADER = "x-gpulet-simulated";
/** Response header on answers computed with random weights (`"weights": "random"` in the JSON too). */
export const WEIGHTS_HEADER = "x-gpulet-weights";

const encoder = new TextEncoder();
const WEIGHTS_ONLY = encoder.encode(`{"weights":"random"`);
const WEIGHTS_FIRST = encoder.encode(`{"weights":"random",`);

/**
 * A JSON answer with `"weights": "random"` first in it, when it is an object (spliced into the bytes the
 * worker wrote: no parse). Other JSON values are left as they are; the header says it for them.
 */
export function markRandomWeights(json: Uint8Array): Uint8Array {
  if (json[0] !== 0x7b) return json; // not "{"
  const rest = json.subarray(1);
  return concatBytes([rest[0] === 0x7d ? WEIGHTS_ONLY : WEIGHTS_FIRST, rest]); // "}": it was empty
}

function parseJson(text: string): unknown {
  try {
    return parseJsonBody(text);
  } catch (e) {
    if (e instanceof BadJsonBody) throw new HttpError(400, e.message);
    throw e;
  }
}

async function readJson(c: Context): Promise<unknown> {
  return parseJson(await c.req.text());
}

/**
 * A data-plane request body, at most `limit` bytes (413 beyond). A declared length that is one plain number
 * is checked up front and the body read in one go (Deno's fast path; hono's `bodyLimit` wraps every body in
 * a counting stream); any other body (chunked, or a repeated `content-length` that arrives joined as
 * "3000, 3000") is counted as it streams.
 */
async function readBody(c: Context, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `request body is larger than the limit of ${limit} bytes`);
  const declared = c.req.header("content-length");
  if (declared !== undefined && /^[0-9]{1,15}$/.test(declared)) {
    if (Number(declared) > limit) throw tooLarge();
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.byteLength > limit) throw tooLarge();
    return bytes;
  }
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return concatBytes(chunks);
}

/**
 * Requests whose SLO is at least this long (ms) are dropped from the queue when their client disconnects.
 * Watching a connection costs the serving loop ~10 µs per request; a shorter-lived request is answered or
 * expired soon anyway.
 */
export const WATCH_DISCONNECT_MIN_SLO_MS = 200;

/**
 * Where a request's time went, as the standard `Server-Timing` header (browsers' developer tools show it):
 * queue, batch wait, model, worker and total (ms), and the rows of the batch it ran in.
 */
function timingHeaders(a: { timing?: Timing }): Record<string, string> {
  const t = a.timing;
  if (!t) return {};
  // One header, not one per figure: each header costs the serving loop microseconds on every answer.
  return {
    "server-timing": `queue;dur=${t.queueMs.toFixed(3)}, batch-wait;dur=${t.batchWaitMs.toFixed(3)}, ` +
      `compute;dur=${t.computeMs.toFixed(3)}, worker;dur=${t.workerMs.toFixed(3)}, total;dur=${
        t.totalMs.toFixed(3)
      }, batch;desc="${t.batchRows}"`,
  };
}

/** Largest body of `POST /v2/repository/index`: a few flags. */
const MAX_INDEX_BODY_BYTES = 64 * 1024;

/** The body of `POST /v2/repository/index` (empty is `{}`). */
const RepositoryIndexRequest = z.object({ repository_name: z.string().optional(), ready: z.boolean().optional() });

/** What the API serves besides the controller, when the server has it. */
export interface ApiServices {
  /** Async invocations (`/async-functions/…`): the store in use (undefined while the server starts). */
  asyncCalls?: () => AsyncCalls | undefined;
  /** This node's cluster, once it joined one (`GET /admin/cluster`). */
  cluster?: () => Cluster | undefined;
}

/** Builds the hono app over a controller, and the services given. */
export function createApp(controller: Controller, options: ApiOptions = {}, services: ApiServices = {}): Hono {
  const { asyncCalls } = services;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxBundle = options.maxBundleBytes ?? 1024 * 1024 * 1024;
  const maxElements = options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS;
  const app = new Hono();
  const simulated = controller.backend?.kind === "sim";
  const appRandom = (a: AppDeployment) => appHasRandomWeights(controller, a);
  const deploymentOf = (name: string, version?: string): Deployment => liveFunction(controller, name, version);
  const appOf = (name: string, version?: string) => liveApp(controller, name, version);
  /** A JSON answer of `invoke`, marked as simulated or as from random weights where it is. */
  const invokeAnswer = (c: Context, json: Uint8Array, headers: Record<string, string>, randomWeights: boolean) => {
    if (simulated) headers[SIMULATED_HEADER] = "true";
    if (randomWeights) headers[WEIGHTS_HEADER] = "random";
    return c.body((randomWeights ? markRandomWeights(json) : json) as Uint8Array<ArrayBuffer>, 200, headers);
  };

  const tooLarge = (limit: number) => (c: Context) =>
    c.json({ error: `request body is larger than the limit of ${limit} bytes` }, 413);

  app.onError((err, c) => {
    if (err instanceof HttpError) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json({ error: err.message }, err.status as 400);
    }
    if (err instanceof DeployError) return c.json({ error: err.message }, err.status as 400);
    console.error("unhandled error:", err);
    return c.json({ error: `internal error: ${err.message}` }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // --- Open Inference Protocol ---
  app.get("/v2/health/live", (c) => c.json({ live: true }));
  app.get("/v2/health/ready", (c) => {
    // In a cluster, also connected to NATS and routing by the current leader's plan.
    const cluster = services.cluster?.();
    const ready = controller.ready && (cluster?.ready ?? true);
    return c.json({ ready, ...(cluster ? { cluster: cluster.readiness() } : {}) }, ready ? 200 : 503);
  });
  const serverMetadata = (c: Context) => c.json(serverInfo());
  app.get("/v2", serverMetadata);
  app.get("/v2/", serverMetadata); // the protocol's OpenAPI file spells it with the slash

  const metadata = (c: Context) => {
    const a = appOf(c.req.param("name")!, c.req.param("version"));
    if (a) {
      // An app takes JSON at /functions/{name}/invoke; with a tensor interface, BYTES here too.
      return c.json({
        ...appMetadata(a),
        parameters: { invoke: `/functions/${a.name}/invoke`, stages: a.stages.map((s) => s.function) },
        ...(appRandom(a) ? { weights: "random" } : {}),
      });
    }
    const dep = deploymentOf(c.req.param("name")!, c.req.param("version"));
    const meta = modelMetadata(dep.name, [String(dep.version)], dep.model);
    return c.json(functionHasRandomWeights(dep) ? { ...meta, weights: "random" } : meta);
  };
  app.get("/v2/models/:name", metadata);
  app.get("/v2/models/:name/versions/:version", metadata);

  const ready = (c: Context) => {
    const a = appOf(c.req.param("name")!, c.req.param("version"));
    if (a) return c.json({ name: a.name, ready: a.ready }, a.ready ? 200 : 503);
    const dep = deploymentOf(c.req.param("name")!, c.req.param("version"));
    return c.json({ name: dep.name, ready: dep.ready }, dep.ready ? 200 : 503);
  };
  app.get("/v2/models/:name/ready", ready);
  app.get("/v2/models/:name/versions/:version/ready", ready);

  /** The client's disconnect signal, for requests (of a function or app) that may wait long enough for it to matter. */
  const disconnectSignal = (c: Context, target: { deadlineMs: number }) =>
    target.deadlineMs >= WATCH_DISCONNECT_MIN_SLO_MS ? c.req.raw.signal : undefined;

  /** An encoded infer answer: JSON, or a JSON header and binary outputs. */
  const inferResponse = (c: Context, res: EncodedResponse) => {
    if (res.headerLength === undefined) return c.body(res.body as string, 200, { "content-type": "application/json" });
    c.header(HEADER_LENGTH_HEADER, String(res.headerLength));
    return c.body(res.body as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/octet-stream" });
  };

  /** An infer request's body, split and checked against the protocol (not yet against a model). */
  const readInferRequest = async (c: Context) => {
    const received = await readBody(c, maxBody);
    // The deadline runs from the whole request in hand (a slow upload is the client's), so decoding counts.
    const arrivedAt = performance.now();
    let json: string, binary: Uint8Array;
    try {
      ({ json, binary } = splitInferBody(received, c.req.header(HEADER_LENGTH_HEADER)));
    } catch (e) {
      if (e instanceof BadTensorRequest) throw new HttpError(400, e.message);
      throw e;
    }
    const parsed = InferRequest.safeParse(parseJson(json));
    if (!parsed.success) throw new HttpError(400, `invalid inference request: ${describeZodError(parsed.error)}`);
    return { req: parsed.data, binary, arrivedAt };
  };

  /** An app's request as tensors (its tensor interface): BYTES in, BYTES out. */
  const inferAppTensors = async (c: Context, a: AppDeployment) => {
    appTensorsOf(a); // an app without them is told so before its body is read
    const { req, binary } = await readInferRequest(c);
    const { outputs, parameters } = await inferApp(controller, a, req, binary, maxElements, disconnectSignal(c, a));
    if (parameters.weights) c.header(WEIGHTS_HEADER, "random");
    const head = { model_name: a.name, model_version: String(a.version), parameters };
    return inferResponse(c, encodeInferResponse(req, head, outputs));
  };

  const infer = async (c: Context) => {
    const a = appOf(c.req.param("name")!, c.req.param("version"));
    if (a) return await inferAppTensors(c, a);
    const dep = deploymentOf(c.req.param("name")!, c.req.param("version"));
    const { req, binary, arrivedAt } = await readInferRequest(c);
    const { outputs, timing, parameters } = await inferFunction(dep, req, binary, {
      maxElements,
      simulated,
      arrivedAt,
      signal: disconnectSignal(c, dep),
      errorHeaders: timingHeaders,
    });
    if (simulated) c.header(SIMULATED_HEADER, "true");
    if (functionHasRandomWeights(dep)) c.header(WEIGHTS_HEADER, "random");
    for (const [k, v] of Object.entries(timingHeaders({ timing }))) c.header(k, v);
    const head = { model_name: dep.name, model_version: String(dep.version), parameters };
    return inferResponse(c, encodeInferResponse(req, head, outputs));
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);

  // --- Functions ---
  /**
   * An invoke's JSON body as bytes: the gpu-let (or app process) parses and validates it, off the serving
   * loop. What needs no parsing is refused here, so it never takes a place in a batch: an empty body, or one
   * nested too deep.
   */
  const invokeBody = async (c: Context): Promise<Uint8Array> => {
    const body = await readBody(c, maxBody);
    if (body.byteLength === 0) throw new HttpError(400, EMPTY_JSON_BODY);
    if (bytesNestDeeperThan(body, MAX_JSON_DEPTH)) throw new HttpError(400, tooDeepMessage(MAX_JSON_DEPTH));
    return body;
  };

  app.post("/functions/:name/invoke", async (c) => {
    const name = c.req.param("name");
    // An unknown name is answered before the body is read.
    if (!controller.getApp(name)) deploymentOf(name);
    const body = await invokeBody(c);
    const answer = await invokeJson(controller, name, body, (t) => disconnectSignal(c, t), timingHeaders);
    const headers: Record<string, string> = answer.app
      ? { "server-timing": `total;dur=${answer.timing.totalMs.toFixed(3)}` }
      : timingHeaders(answer);
    headers["content-type"] = "application/json";
    return invokeAnswer(c, answer.json, headers, answer.randomWeights);
  });

  if (asyncCalls) registerAsync(app, controller, asyncCalls, invokeBody);

  // --- Model repository (Triton's extension): admin operations, so the admin token guards them ---
  const adminOnly = async (c: Context, next: () => Promise<void>) => {
    if (options.adminToken) {
      const auth = c.req.header("authorization") ?? "";
      if (!safeTokenEqual(auth, `Bearer ${options.adminToken}`)) {
        c.header("www-authenticate", 'Bearer realm="gpulet admin"');
        throw new HttpError(401, "the admin API needs `Authorization: Bearer <token>`");
      }
    }
    await next();
  };
  app.use("/v2/repository/*", adminOnly);
  app.post("/v2/repository/index", async (c) => {
    const body = new TextDecoder().decode(await readBody(c, MAX_INDEX_BODY_BYTES)).trim();
    const parsed = RepositoryIndexRequest.safeParse(body ? parseJson(body) : {});
    if (!parsed.success) throw new HttpError(400, `invalid index request: ${describeZodError(parsed.error)}`);
    const models = await controller.repositoryIndex();
    return c.json(parsed.data.ready ? models.filter((m) => m.state === "READY") : models);
  });
  const repositoryName = (c: Context) => checkedName(c.req.param("name")!);
  app.post("/v2/repository/models/:name/load", async (c) => {
    const name = repositoryName(c);
    return c.json(await controller.load(name));
  });
  app.post("/v2/repository/models/:name/unload", async (c) => {
    const name = repositoryName(c);
    await controller.unload(name);
    return c.json({ name, state: "UNAVAILABLE" });
  });

  // --- Admin ---
  app.use("/admin/*", adminOnly);
  app.post("/admin/functions", bodyLimit({ maxSize: maxBundle, onError: tooLarge(maxBundle) }), async (c) => {
    const parsed = parseBundle(await readJson(c));
    if (!parsed.success) throw new HttpError(400, `invalid bundle: ${describeZodError(parsed.error)}`);
    const rec = await controller.deploy(parsed.data);
    const app = controller.getApp(rec.name);
    if (app) return c.json({ name: rec.name, version: rec.version, manifest: rec.manifest, app: app.describe() }, 201);
    const dep = controller.get(rec.name)!;
    return c.json({ name: rec.name, version: rec.version, manifest: rec.manifest, gpulets: dep.describe() }, 201);
  });
  app.get("/admin/functions", (c) =>
    c.json({
      functions: controller.list().map((d) => ({
        name: d.name,
        version: d.version,
        ready: d.ready,
        deployedAt: d.record.deployedAt,
        manifest: d.record.manifest,
        queueRows: d.dispatcher.depth,
        gpulets: d.describe(),
      })),
      apps: controller.listApps().map((a) => ({
        name: a.name,
        version: a.version,
        ready: a.ready,
        deployedAt: a.record.deployedAt,
        manifest: a.record.manifest,
        app: a.describe(),
      })),
    }));
  app.delete("/admin/functions/:name", async (c) => {
    const name = checkedName(c.req.param("name"));
    if (!(await controller.remove(name))) throw new HttpError(404, `unknown function "${name}"`);
    return c.json({ removed: name });
  });
  app.get("/admin/plan", (c) => c.json(controller.plan()));
  app.get("/admin/devices", (c) => c.json({ devices: controller.devices() }));
  app.get("/admin/cluster", async (c) => {
    const cluster = services.cluster?.();
    if (!cluster) throw new HttpError(404, "this node is not in a cluster (start it with --cluster nats://…)");
    return c.json(await cluster.describe());
  });

  // --- Dashboard ---
  registerUi(app, controller, () => services.cluster?.());

  // --- Metrics ---
  app.get("/metrics", async (c) => {
    c.header("content-type", controller.metrics.contentType);
    return c.body(await controller.metrics.render());
  });

  return app;
}
