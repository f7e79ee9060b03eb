/**
 * Calls on a running platform from outside it (tests, benchmarks, tools): deploy a function folder, read one
 * Prometheus sample, list the live gpu-let workers.
 */
import { bundleFolder } from "../functions/bundle.ts";

const auth = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

/** Bundles and deploys a function folder; returns the answer's body (throws on a non-2xx answer). */
export async function deployFolder(url: string, folder: string, token?: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/admin/functions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth(token) },
    body: JSON.stringify(await bundleFolder(folder)),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`deploy ${folder}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/**
 * The value of one Prometheus sample from `/metrics` (`missing` when absent, default 0), e.g.
 * `gpulet_requests_total{function="x",code="200"}`.
 */
export async function metric(url: string, sample: string, missing = 0): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : missing;
}

/** Rows waiting in a function's queue, from `/metrics` (-1 while it has no gauge). */
export function queueDepth(url: string, fn: string): Promise<number> {
  return metric(url, `gpulet_queue_depth{function="${fn}"}`, -1);
}

/** Pids of the gpu-let workers in the live layout (`GET /admin/plan`). */
export async function workerPids(url: string, token?: string): Promise<number[]> {
  const plan = await (await fetch(`${url}/admin/plan`, { headers: auth(token) })).json();
  // One process per gpu-let; a gpu-let still starting has none yet.
  return plan.gpus.flatMap((g: { gpulets: { pid?: number }[] }) => g.gpulets.flatMap((l) => l.pid ?? []));
}
