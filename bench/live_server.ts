/** The live platform as the reliability benchmarks drive it: an in-process server, deploys, metric samples. */
export { deployFolder, metric, workerPids } from "../src/api/admin_client.ts";
import { type RunningServer, type ServerOptions, startServer } from "../src/server.ts";

/** Starts the platform on a free loopback port with a temporary state directory. */
export async function server(opts: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-reliability-" });
  return await startServer({ port: 0, stateDir, log: () => {}, ...opts });
}
