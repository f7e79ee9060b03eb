/**
 * `deno task start`: runs the platform (controller, HTTP API, gpu-let workers) with embedded defaults:
 * CPU devices, state in `.gpulet/`, 127.0.0.1:8080. SIGINT/SIGTERM drain in-flight requests and stop
 * every worker.
 */
import { startServer } from "../server.ts";
import { parseDevices } from "../controller/backends.ts";
import { parseArgs } from "./args.ts";

const HELP = `usage: deno task start [--port N] [--host ADDR] [--state DIR] [--devices D] [--sim-scale K] [--token T]
  --port N          listen port (default 8080; 0 picks a free one and prints it)
  --host ADDR       listen address (default 127.0.0.1)
  --state DIR       registry and deployed functions (default .gpulet)
  --devices D       cpu (default: one pinned gpu-let per function), cpu:N (N devices of this machine's
                    cores, autoscaled) or sim:<profile>xN (N simulated GPUs, e.g. sim:h100x8, autoscaled)
  --sim-scale K     simulated devices: every latency and SLO × K, so one machine can drive them (default 1)
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
    "sim-scale",
  ], ["help"]);
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }
  const devices = (values.devices as string | undefined) ?? "cpu";
  try {
    parseDevices(devices);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const simScale = Number(values["sim-scale"] ?? 1);
  if (!(simScale > 0)) {
    console.error(`--sim-scale ${values["sim-scale"]}: expected a number > 0`);
    Deno.exit(2);
  }
  const server = await startServer({
    port: Number(values.port ?? 8080),
    hostname: (values.host as string | undefined) ?? "127.0.0.1",
    stateDir: (values.state as string | undefined) ?? ".gpulet",
    adminToken: (values.token as string | undefined) ?? Deno.env.get("GPULET_ADMIN_TOKEN"),
    coresPerGpulet: Number(values["cores-per-gpulet"] ?? 1),
    maxQueueRows: Number(values["max-queue"] ?? 1024),
    devices,
    simScale,
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
