/**
 * Builds load targets from a running controller: each function's input signature (OIP model metadata), its
 * SLO and the devices' time scale (admin API), and one pre-encoded binary infer request of zeros, batch 1.
 */
import { binaryInferRequest } from "./oip_client.ts";
import { type OipDatatype, ortTypeOf, TYPES } from "../functions/tensor.ts";
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

/** Targets for `names` on the controller at `base`; SLOs are the deployed ones × the devices' time scale. */
export async function discoverTargets(base: string, names: readonly string[], token?: string): Promise<LoadTarget[]> {
  const fns = (await getJson(`${base}/admin/functions`, token)).functions as {
    name: string;
    manifest: { sloMs: number };
  }[];
  const plan = await getJson(`${base}/admin/plan`, token);
  const timeScale = (plan.devices as { timeScale?: number } | undefined)?.timeScale ?? 1;
  const url = new URL(base);
  return await Promise.all(names.map(async (name) => {
    const fn = fns.find((f) => f.name === name);
    if (!fn) throw new Error(`function "${name}" is not deployed at ${base} (deployed: ${fns.map((f) => f.name)})`);
    const meta = await getJson(`${base}/v2/models/${name}`) as unknown as Meta;
    const req = binaryInferRequest(meta.inputs.map((i) => {
      const shape = i.shape.map((d, k) => (k === 0 || d < 0 ? 1 : d));
      const type = ortTypeOf(i.datatype)!;
      return { name: i.name, datatype: i.datatype, shape, data: TYPES[type].alloc(shape.reduce((a, b) => a * b, 1)) };
    }));
    return {
      name,
      sloMs: fn.manifest.sloMs * timeScale,
      request: prepareRequest(new URL(`/v2/models/${name}/infer`, url), req.body, req.headers),
    };
  }));
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
