/** The live platform as the reliability benchmarks drive it: an in-process server, deploys, metric samples. */
import { bundleFolder } from "../src/functions/bundle.ts";
import { type RunningServer, type ServerOptions, startServer } from "../src/server.ts";

/** Starts the platform on a free loopback port with a temporary state directory. */
export async function server(opts: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-reliability-" });
  return await startServer({ port: 0, stateDir, log: () => {}, ...opts });
}

/** Bundles and deploys a function folder (throws on a non-2xx answer). */
export async function deployFolder(url: string, folder: string): Promise<void> {
  const res = await fetch(`${url}/admin/functions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(await bundleFolder(folder)),
  });
  if (!res.ok) throw new Error(`deploy ${folder}: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/** One Prometheus sample from `/metrics` (0 when absent). */
export async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}
