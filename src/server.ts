/**
 * Starts the platform in this process: controller (registry, workers) + HTTP server. Used by
 * `deno task start` and by the integration tests.
 */
import { createApp, markRandomWeights } from "./api/app.ts";
import { type ApiOptions, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TENSOR_ELEMENTS } from "./api/app.ts";
import { Controller, type ControllerOptions } from "./controller/controller.ts";
import { defaultModels, ensureModels } from "./models/zoo.ts";
import { GRPC_INFER_PATH, grpcInference, type GrpcServer, startGrpcServer } from "./api/grpc/server.ts";
import { AsyncInvocations } from "./async/async_invocations.ts";
import type { AsyncCalls, RunOutcome } from "./async/call_runner.ts";
import { JetStreamCalls } from "./cluster/jetstream_calls.ts";
import { HttpError, invokeJson } from "./api/data_plane.ts";
import { Cluster } from "./cluster/cluster.ts";

export interface ServerOptions extends ControllerOptions, ApiOptions {
  hostname?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The gRPC port (0 picks a free one); "off" (the default here; the CLI's is 8081) serves no gRPC. */
  grpcPort?: number | "off";
  /** Join a cluster on these NATS servers (`--cluster`); absent: one node with embedded state. */
  cluster?: {
    servers: string[];
    node: string;
    /** JetStream replicas of the cluster's state (default: 3 with ≥ 3 servers, else 1). */
    replicas?: number;
    /** The URL peers reach this node's HTTP at (default: the listening address). */
    advertiseUrl?: string;
    /** An async call's delivery not acked in this long goes to another node (ms; default 30 s). */
    asyncAckWaitMs?: number;
  };
}

export interface RunningServer {
  url: string;
  port: number;
  /** The gRPC port, when gRPC is served. */
  grpcPort?: number;
  controller: Controller;
  /** This node in its cluster, when it joined one. */
  cluster?: Cluster;
  /** Drains in-flight requests, stops every worker and the HTTP server. */
  shutdown(): Promise<void>;
}

/** Starts controller and HTTP server; restores deployed functions before resolving. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? ((line: string) => console.log(line));
  await ensureModels(defaultModels(), opts.modelsDir, log);
  const controller = await Controller.create({ ...opts, log });
  const runner = {
    run: (fn: string, body: Uint8Array) => runAsync(controller, fn, body),
    // Async work waits for a gap: nothing of the function queued (an app has no queue of its own).
    hasGap: (fn: string) => (controller.get(fn)?.dispatcher.depth ?? 0) === 0,
    log,
  };
  // One node: Deno KV's queue; in a cluster: a JetStream work queue (made once the cluster is joined).
  let asyncCalls: AsyncCalls | undefined = opts.cluster
    ? undefined
    : await AsyncInvocations.open({ dir: `${controller.stateDir}/async`, ...runner });
  let cluster: Cluster | undefined;
  const app = createApp(controller, opts, { asyncCalls: () => asyncCalls, cluster: () => cluster });
  const hostname = opts.hostname ?? "127.0.0.1";
  let port = 0;
  let grpc: GrpcServer | undefined;
  // In a cluster the front door routes data-plane requests: served here, or forwarded to a node that has room.
  // A gRPC infer call travels between nodes as an internal HTTP-shaped request, served by the gRPC side.
  const inference = grpcInference(controller, {
    maxTensorElements: opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS,
  });
  const local = (req: Request) =>
    new URL(req.url).pathname.startsWith(GRPC_INFER_PATH)
      ? inference.serveForwarded(req)
      : Promise.resolve(app.fetch(req));
  const server = Deno.serve({
    hostname,
    port: opts.port ?? 8080,
    onListen: (addr) => {
      port = addr.port;
    },
  }, (req) => cluster ? cluster.route(req, local) : app.fetch(req));
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  if (opts.cluster) {
    try {
      cluster = await Cluster.join(controller, {
        ...opts.cluster,
        url: opts.cluster.advertiseUrl ?? url,
        maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        log,
      });
      asyncCalls = await JetStreamCalls.open(cluster.nc, {
        ...runner,
        node: opts.cluster.node,
        replicas: cluster.replicas,
        ackWaitMs: opts.cluster.asyncAckWaitMs,
      });
    } catch (e) {
      await cluster?.leave();
      await controller.shutdown();
      await server.shutdown();
      throw e;
    }
  }
  if (opts.grpcPort !== undefined && opts.grpcPort !== "off") {
    try {
      grpc = await startGrpcServer(controller, {
        hostname,
        port: opts.grpcPort,
        adminToken: opts.adminToken,
        maxMessageBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxTensorElements: opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS,
        inference,
        ...(cluster ? { route: (req: Request) => cluster!.route(req, local) } : {}),
      });
    } catch (e) {
      await asyncCalls?.close();
      await cluster?.leave();
      await controller.shutdown();
      await server.shutdown();
      throw e;
    }
  }
  await controller.restore();
  await cluster?.start(local);
  await asyncCalls!.start();
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    cluster,
    grpcPort: grpc?.port,
    controller,
    shutdown: () =>
      closing ??= (async () => {
        // Async calls running finish and the rest stay queued for the next start; then workers drain (the
        // HTTP and gRPC servers still answer the requests being served), then they stop.
        await asyncCalls?.close();
        // Out of the cluster first: peers stop sending here, and what they sent is answered.
        await cluster?.leave();
        await controller.shutdown();
        await Promise.all([server.shutdown(), grpc?.stop()]);
      })(),
  };
}

/** One async call's run: the same path as a sync invoke, its error as the status it would have answered. */
async function runAsync(controller: Controller, fn: string, body: Uint8Array): Promise<RunOutcome> {
  try {
    const a = await invokeJson(controller, fn, body);
    return { code: 200, json: a.randomWeights ? markRandomWeights(a.json) : a.json };
  } catch (e) {
    if (e instanceof HttpError) return { code: e.status, error: e.message };
    throw e;
  }
}
