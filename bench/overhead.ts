/**
 * Data-plane overhead: HTTP end-to-end throughput at saturation against direct in-process onnxruntime-node
 * on the same core and batch size, and the p50 latency the platform adds at low load.
 *
 * Layout on this 2-core machine: the harness, the controller and the load generator share core 0; inference
 * runs on core 1 in both arms (the gpu-let worker is pinned there; the direct arm runs under `taskset -c 1`).
 */
import { bundleFolder } from "../src/functions/bundle.ts";
import { DEFAULT_MODELS_DIR, ensureModels } from "../src/models/zoo.ts";
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";

export interface OverheadCase {
  /** Function folder to deploy. */
  folder: string;
  model: string;
  /** Body of one request (one row). */
  request: unknown;
  /** Endpoint path, relative to the server URL. */
  path: string;
  batch: number;
}

export interface OverheadResult {
  model: string;
  batch: number;
  directItemsPerS: number;
  platformItemsPerS: number;
  throughputRatio: number;
  directP50Ms: number;
  platformP50Ms: number;
  addedP50Ms: number;
  platformP99Ms: number;
  meanExecutedBatch: number;
}

const percentile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

async function startController(state: string): Promise<{ url: string; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${PROJECT_ROOT}/src/cli/start.ts`, "--port", "0", "--state", state, "--max-queue", "100000"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`controller exited: ${out}`);
    out += value;
    const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
    if (m) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      return { url: m[1], child };
    }
  }
}

async function runDirect(modelFile: string, batch: number, seconds: number) {
  const taskset = findTaskset();
  const args = ["run", "-A", `${PROJECT_ROOT}/bench/direct.ts`, modelFile, String(batch), String(seconds), "1"];
  const cmd = taskset
    ? new Deno.Command(taskset, { args: ["-c", "1", Deno.execPath(), ...args] })
    : new Deno.Command(Deno.execPath(), { args });
  const out = await cmd.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}

/** Closed-loop clients for `seconds`; returns answered requests per second and latencies. */
async function load(url: string, body: string, clients: number, seconds: number) {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      await res.arrayBuffer();
      if (res.ok) latencies.push(performance.now() - t);
      else errors++;
    }
  }));
  return { perS: latencies.length / seconds, latencies, errors };
}

async function scrapeMeanBatch(url: string, fn: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sum = Number(text.match(new RegExp(`gpulet_batch_size_sum\\{function="${fn}"\\} ([0-9.e+]+)`))?.[1] ?? 0);
  const count = Number(text.match(new RegExp(`gpulet_batch_size_count\\{function="${fn}"\\} ([0-9.e+]+)`))?.[1] ?? 1);
  return sum / count;
}

/** Measures one case; `progress` gets a line per phase. */
export async function measureOverhead(
  c: OverheadCase,
  seconds: number,
  progress: (s: string) => void,
): Promise<OverheadResult> {
  await ensureModels([c.model], DEFAULT_MODELS_DIR, progress);
  progress(`${c.model}: direct onnxruntime, batch ${c.batch}, ${seconds} s on core 1`);
  const direct = await runDirect(`${DEFAULT_MODELS_DIR}/${c.model}.onnx`, c.batch, seconds);
  const state = await Deno.makeTempDir({ prefix: "gpulet-bench-" });
  const { url, child } = await startController(state);
  try {
    const bundle = await bundleFolder(c.folder);
    const dep = await fetch(`${url}/admin/functions`, { method: "POST", body: JSON.stringify(bundle) });
    if (!dep.ok) throw new Error(`deploy: ${await dep.text()}`);
    await dep.body?.cancel();
    const endpoint = `${url}${c.path}`;
    const body = JSON.stringify(c.request);
    progress(`${c.model}: platform at low load (1 client), ${Math.min(seconds, 5)} s`);
    const low = await load(endpoint, body, 1, Math.min(seconds, 5));
    progress(`${c.model}: platform at saturation (${4 * c.batch} clients), ${seconds} s`);
    await load(endpoint, body, 4 * c.batch, 1); // warm the path
    const before = await scrapeMeanBatch(url, c.folder.split("/").pop()!);
    const sat = await load(endpoint, body, 4 * c.batch, seconds);
    const meanBatch = await scrapeMeanBatch(url, c.folder.split("/").pop()!);
    if (sat.errors) progress(`${c.model}: ${sat.errors} errors at saturation`);
    const platformP50 = percentile(low.latencies, 0.5);
    void before;
    return {
      model: c.model,
      batch: c.batch,
      directItemsPerS: direct.itemsPerS,
      platformItemsPerS: sat.perS,
      throughputRatio: sat.perS / direct.itemsPerS,
      directP50Ms: direct.p50Batch1Ms,
      platformP50Ms: platformP50,
      addedP50Ms: platformP50 - direct.p50Batch1Ms,
      platformP99Ms: percentile(sat.latencies, 0.99),
      meanExecutedBatch: meanBatch,
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
}
