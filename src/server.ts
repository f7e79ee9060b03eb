/**
 * Starts the platform in this process: controller (registry, workers) + HTTP server. Used by
 * `deno task start` and by the integration tests.
 */
import { createApp, markRandomWeights } from "./api/app.ts";
import { type ApiOptions, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TENSOR_ELEMENTS } from "./api/app.ts";
import { Controller, type ControllerOptions } from "./controller/controller.ts";
import { defaultModels, ensureModels } from "./models/zoo.ts";
import { type GrpcServer, startGrpcServer } from "./api/grpc/server.ts";
import { AsyncInvocations, type RunOutcome } from "./async/async_invocations.ts";
import { HttpError, invokeJson } from "./api/data_plane.ts";

export interface ServerOptions extends ControllerOptions, ApiOptions {
  hostname?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The gRPC port (0 picks a free one); "off" (the default here; the CLI's is 8081) serves no gRPC. */
  grpcPort?: number | "off";
}

export interface RunningServer {
  url: string;
  port: number;
  /** The gRPC port, when gRPC is served. */
  grpcPort?: number;
  controller: Controller;
  /** Drains in-flight requests, stops every worker and the HTTP server. */
  shutdown(): Promise<void>;
}

/** Starts controller and HTTP server; restores deployed functions before resolving. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? ((line: string) => console.log(line));
  await ensureModels(defaultModels(), opts.modelsDir, log);
  const controller = await Controller.create({ ...opts, log });
  const asyncCalls = await AsyncInvocations.open({
    dir: `${controller.stateDir}/async`,
    run: (fn, body) => runAsync(controller, fn, body),
    // Async work waits for a gap: nothing of the function queued (an app has no queue of its own).
    hasGap: (fn) => (controller.get(fn)?.dispatcher.depth ?? 0) === 0,
    log,
  });
  const app = createApp(controller, opts, asyncCalls);
  const hostname = opts.hostname ?? "127.0.0.1";
  let port = 0;
  const server = Deno.serve({
    hostname,
    port: opts.port ?? 8080,
    onListen: (addr) => {
      port = addr.port;
    },
  }, app.fetch);
  let grpc: GrpcServer | undefined;
  if (opts.grpcPort !== undefined && opts.grpcPort !== "off") {
    try {
      grpc = await startGrpcServer(controller, {
        hostname,
        port: opts.grpcPort,
        adminToken: opts.adminToken,
        maxMessageBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxTensorElements: opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS,
      });
    } catch (e) {
      await asyncCalls.close();
      await controller.shutdown();
      await server.shutdown();
      throw e;
    }
  }
  await controller.restore();
  await asyncCalls.start();
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostname}:${port}`,
    port,
    grpcPort: grpc?.port,
    controller,
    shutdown: () =>
      closing ??= (async () => {
        // Async calls running finish and the rest stay queued for the next start; then workers drain (the
        // HTTP and gRPC servers still answer the requests being served), then they stop.
        await asyncCalls.close();
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
