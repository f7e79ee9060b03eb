/**
 * Starts the platform in this process: controller (registry, workers) + HTTP server. Used by
 * `deno task start` and by the integration tests.
 */
import { createApp } from "./api/app.ts";
import { type ApiOptions, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TENSOR_ELEMENTS } from "./api/app.ts";
import { Controller, type ControllerOptions } from "./controller/controller.ts";
import { defaultModels, ensureModels } from "./models/zoo.ts";
import { type GrpcServer, startGrpcServer } from "./api/grpc/server.ts";

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
  const app = createApp(controller, opts);
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
      await controller.shutdown();
      await server.shutdown();
      throw e;
    }
  }
  await controller.restore();
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostname}:${port}`,
    port,
    grpcPort: grpc?.port,
    controller,
    shutdown: () =>
      closing ??= (async () => {
        // Workers drain first (the HTTP and gRPC servers still answer the requests being served), then they stop.
        await controller.shutdown();
        await Promise.all([server.shutdown(), grpc?.stop()]);
      })(),
  };
}
