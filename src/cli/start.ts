/**
 * `deno task start`: runs the platform (controller, HTTP API, gpu-let workers) with embedded defaults:
 * CPU devices, state in `.gpulet/`, 127.0.0.1:8080. SIGINT/SIGTERM drain in-flight requests and stop
 * every worker.
 */
import { startServer } from "../server.ts";
import { parseArgs } from "./args.ts";

const HELP = `usage: deno task start [--port N] [--host ADDR] [--state DIR] [--devices cpu] [--token T]
  --port N          listen port (default 8080; 0 picks a free one and prints it)
  --host ADDR       listen address (default 127.0.0.1)
  --state DIR       registry and deployed functions (default .gpulet)
  --devices cpu     device kind (only cpu on this build)
  --token T         bearer token for /admin/* (default: GPULET_ADMIN_TOKEN, else none)
  --cores-per-gpulet N   cores pinned to each gpu-let (default 1)
  --max-queue N     rows waiting per function before 429 (default 1024)`;

if (import.meta.main) {
  const { values } = parseArgs(Deno.args, [
    "port",
    "host",
    "state",
    "devices",
    "token",
    "cores-per-gpulet",
    "max-queue",
  ], ["help"]);
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const devices = (values.devices as string | undefined) ?? "cpu";
  if (devices !== "cpu") {
    console.error(`--devices ${devices}: only "cpu" is available in this build`);
    Deno.exit(2);
  }
  const server = await startServer({
    port: Number(values.port ?? 8080),
    hostname: (values.host as string | undefined) ?? "127.0.0.1",
    stateDir: (values.state as string | undefined) ?? ".gpulet",
    adminToken: (values.token as string | undefined) ?? Deno.env.get("GPULET_ADMIN_TOKEN"),
    coresPerGpulet: Number(values["cores-per-gpulet"] ?? 1),
    maxQueueRows: Number(values["max-queue"] ?? 1024),
  });
  console.log(`gpulet listening on ${server.url} (state ${server.controller.stateDir})`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: draining and stopping workers`);
    await server.shutdown();
    console.log("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
