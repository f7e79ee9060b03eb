/**
 * Builds load targets from a running controller: each function's input signature (OIP model metadata), its
 * SLO and the devices' time scale (admin API), and one pre-encoded binary infer request of zeros, batch 1;
 * an app's JSON body and the functions its stages call; and the server's own per-function counts.
 */
import parsePrometheus from "parse-prometheus-text-format";
import { binaryInferRequest } from "./oip_client.ts";
import { elementCount, type OipDatatype, ortTypeOf, zeroData } from "../functions/tensor.ts";
import { prepareRequest } from "../loadgen/http.ts";
import type { LoadTarget } from "../loadgen/open_loop.ts";

async function getJson(url: string, token?: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

interface Meta {
  inputs: { name: string; datatype: OipDatatype; shape: number[] }[];
}

/**
 * Targets for `names` on the controller at `base`; SLOs are the deployed ones × the devices' time scale. A
 * function is sent a binary infer request of zeros; an app (or a function given one in `bodies`) its JSON
 * body at `POST /functions/<name>/invoke`, and an app's target lists the functions its stages call.
 */
export async function discoverTargets(
  base: string,
  names: readonly string[],
  token?: string,
  bodies: ReadonlyMap<string, string> = new Map(),
): Promise<LoadTarget[]> {
  const listed = await getJson(`${base}/admin/functions`, token);
  const fns = listed.functions as { name: string; manifest: { sloMs: number } }[];
  const apps = (listed.apps ?? []) as { name: string; manifest: { sloMs: number; stages: { function: string }[] } }[];
  const plan = await getJson(`${base}/admin/plan`, token);
  const timeScale = (plan.devices as { timeScale?: number } | undefined)?.timeScale ?? 1;
  const url = new URL(base);
  const invoke = (name: string, body: string) =>
    prepareRequest(new URL(`/functions/${name}/invoke`, url), body, { "content-type": "application/json" });
  return await Promise.all(names.map(async (name) => {
    const app = apps.find((a) => a.name === name);
    if (app) {
      const body = bodies.get(name);
      if (body === undefined) throw new Error(`"${name}" is an app: give its JSON body with --body ${name}=FILE.json`);
      const stages = [...new Set(app.manifest.stages.map((s) => s.function))];
      return { name, sloMs: app.manifest.sloMs * timeScale, request: invoke(name, body), stages };
    }
    const fn = fns.find((f) => f.name === name);
    if (!fn) {
      throw new Error(
        `"${name}" is not deployed at ${base} (functions: ${fns.map((f) => f.name)}; apps: ${apps.map((a) => a.name)})`,
      );
    }
    const body = bodies.get(name);
    if (body !== undefined) return { name, sloMs: fn.manifest.sloMs * timeScale, request: invoke(name, body) };
    const meta = await getJson(`${base}/v2/models/${name}`) as unknown as Meta;
    const req = binaryInferRequest(meta.inputs.map((i) => {
      const shape = i.shape.map((d, k) => (k === 0 || d < 0 ? 1 : d));
      return { name: i.name, datatype: i.datatype, shape, data: zeroData(ortTypeOf(i.datatype)!, elementCount(shape)) };
    }));
    return {
      name,
      sloMs: fn.manifest.sloMs * timeScale,
      request: prepareRequest(new URL(`/v2/models/${name}/infer`, url), req.body, req.headers),
    };
  }));
}

/** Calls a function has answered and how many within their deadline (an app's stage call: its budget's). */
export interface FunctionCounts {
  answered: number;
  within: number;
}

/**
 * Every function's answered and within-deadline counts so far, from the controller's `GET /metrics`
 * (`gpulet_requests_total`, `gpulet_requests_within_slo_total`): two readings bracket a load run, and their
 * difference is what the run's calls (an app's stage calls among them) saw on the server's side.
 */
export async function functionCounts(base: string): Promise<Map<string, FunctionCounts>> {
  const res = await fetch(`${base}/metrics`);
  if (!res.ok) throw new Error(`GET ${base}/metrics: ${res.status}`);
  const out = new Map<string, FunctionCounts>();
  const families = parsePrometheus(await res.text()) as {
    name: string;
    metrics: { value?: string; labels?: Record<string, string> }[];
  }[];
  for (const family of families) {
    const field = family.name === "gpulet_requests_total"
      ? "answered"
      : family.name === "gpulet_requests_within_slo_total"
      ? "within"
      : undefined;
    if (!field) continue;
    for (const m of family.metrics) {
      const fn = m.labels?.function;
      if (fn === undefined || m.value === undefined) continue;
      const counts = out.get(fn) ?? out.set(fn, { answered: 0, within: 0 }).get(fn)!;
      counts[field] += Number(m.value);
    }
  }
  return out;
}

/** GPUs in use, from `GET /admin/plan` (undefined if the controller does not say). */
export function gpuSampler(base: string, token?: string): () => Promise<number | undefined> {
  return async () => {
    const plan = await getJson(`${base}/admin/plan`, token);
    return typeof plan.gpusInUse === "number"
      ? plan.gpusInUse
      : typeof plan.gpusUsed === "number"
      ? plan.gpusUsed
      : undefined;
  };
}
