/**
 * Starts the platform in this process: controller (registry, workers) + HTTP server. Used by
 * `deno task start` and by the integration tests.
 */
import { createApp } from "./api/app.ts";
import type { ApiOptions } from "./api/app.ts";
import { Controller, type ControllerOptions } from "./controller/controller.ts";
import { defaultModels, ensureModels } from "./models/zoo.ts";

export interface ServerOptions extends ControllerOptions, ApiOptions {
  hostname?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface RunningServer {
  url: string;
  port: number;
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
  await controller.restore();
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostname}:${port}`,
    port,
    controller,
    shutdown: () =>
      closing ??= (async () => {
        // Workers drain first (the HTTP server still answers the requests being served), then HTTP stops.
        await controller.shutdown();
        await server.shutdown();
      })(),
  };
}
