/**
 * Data-plane overhead: HTTP end-to-end throughput at saturation against direct in-process onnxruntime-node
 * on the same core and batch size, and the p50 latency the platform adds at low load.
 *
 * Layout on this 2-core machine: the harness (load generator), the controller and the echo server share
 * core 0; inference runs on core 1 in both arms (the gpu-let worker is pinned there; the direct arm runs
 * under `taskset -c 1`). The direct arm runs before and after the platform arm and the two are averaged,
 * because this VM's speed drifts by ±15 % over minutes.
 */
import { deployFolder } from "../src/api/admin_client.ts";
import { DEFAULT_MODELS_DIR, ensureModels } from "../src/models/zoo.ts";
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { closedLoop } from "../src/loadgen/closed_loop.ts";
import { percentile } from "../src/loadgen/stats.ts";
import { type PreparedRequest, prepareRequest } from "../src/loadgen/http.ts";

export interface OverheadCase {
  /** Label of the row in the results. */
  label: string;
  /** Function folder to deploy. */
  folder: string;
  model: string;
  /** Endpoint path, relative to the server URL. */
  path: string;
  /** One request: body and headers. */
  body: Uint8Array | string;
  headers: Record<string, string>;
  /** Rows (items) one request carries. */
  rowsPerRequest: number;
  /** Batch size of the direct arm (and the function's maxBatch). */
  batch: number;
}

export interface OverheadResult {
  label: string;
  model: string;
  batch: number;
  rowsPerRequest: number;
  directItemsPerS: number;
  /** The two direct runs (before, after), to show drift. */
  directRunsItemsPerS: number[];
  platformItemsPerS: number;
  throughputRatio: number;
  /** Requests per second the echo server answers with the same request and load generator. */
  httpCeilingRequestsPerS: number;
  platformRequestsPerS: number;
  /** Direct latency of one request's rows (p50), and the platform's at one client. */
  directP50Ms: number;
  platformP50Ms: number;
  addedP50Ms: number;
  platformP99Ms: number;
  meanExecutedBatch: number;
  errors: number;
}

const percentileOf = (xs: number[], q: number) => percentile([...xs].sort((a, b) => a - b), q) ?? NaN;

/**
 * Starts a server script as a child (same cores as this process); resolves once it prints `listening`
 * (whose first group is its URL), with the whole match.
 */
export async function startChild(
  args: string[],
  listening = /listening on (http:\/\/[0-9.:]+)/,
): Promise<{ url: string; match: RegExpMatchArray; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited: ${out}`);
    out += value;
    const m = out.match(listening);
    if (m) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      return { url: m[1], match: m, child };
    }
  }
}

/** Stops a child started by {@link startChild}. */
export async function stopChild(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await child.status;
}

async function runDirect(modelFile: string, batch: number, seconds: number, latencyRows: number) {
  const taskset = findTaskset();
  const args = [
    "run",
    "-A",
    `${PROJECT_ROOT}/bench/direct.ts`,
    modelFile,
    String(batch),
    String(seconds),
    "1",
    String(latencyRows),
  ];
  const cmd = taskset
    ? new Deno.Command(taskset, { args: ["-c", "1", Deno.execPath(), ...args] })
    : new Deno.Command(Deno.execPath(), { args });
  const out = await cmd.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!) as {
    itemsPerS: number;
    p50RequestMs: number;
  };
}

async function scrapeBatches(url: string, fn: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (what: string) =>
    Number(text.match(new RegExp(`gpulet_batch_size_${what}\\{function="${fn}"\\} ([0-9.e+]+)`))?.[1] ?? 0);
  return { sum: read("sum"), count: read("count") };
}

/** Clients that keep the function's queue at several full batches. */
function saturatingClients(c: OverheadCase): number {
  return Math.max(8, Math.ceil((4 * c.batch) / c.rowsPerRequest));
}

/** Requests per second of the echo server for this request (the HTTP ceiling of this core). */
async function httpCeiling(c: OverheadCase, seconds: number): Promise<number> {
  const { url, child } = await startChild(["run", "-A", `${PROJECT_ROOT}/bench/echo_server.ts`]);
  try {
    const target = new URL(`${url}${c.path}`);
    const req = prepareRequest(target, c.body, c.headers);
    await closedLoop(target, req, saturatingClients(c), 1);
    return (await closedLoop(target, req, saturatingClients(c), seconds)).perS;
  } finally {
    await stopChild(child);
  }
}

/** Measures one case; `progress` gets a line per phase. */
export async function measureOverhead(
  c: OverheadCase,
  seconds: number,
  progress: (s: string) => void,
): Promise<OverheadResult> {
  await ensureModels([c.model], DEFAULT_MODELS_DIR, progress);
  const modelFile = `${DEFAULT_MODELS_DIR}/${c.model}.onnx`;
  progress(`${c.label}: direct onnxruntime, batch ${c.batch}, ${seconds} s on core 1`);
  const before = await runDirect(modelFile, c.batch, seconds, c.rowsPerRequest);
  progress(`${c.label}: HTTP ceiling (echo server), ${Math.min(seconds, 5)} s`);
  const ceiling = await httpCeiling(c, Math.min(seconds, 5));
  const state = await Deno.makeTempDir({ prefix: "gpulet-bench-" });
  const { url, child } = await startChild([
    "run",
    "-A",
    `${PROJECT_ROOT}/src/cli/start.ts`,
    "--port",
    "0",
    "--state",
    state,
    "--max-queue",
    "100000",
    // A fixed layout (one gpu-let of one core): the data plane is measured, not the planner, and the
    // platform gets the same core as the direct arm however the load moves the plan.
    "--gpulets-per-function",
    "1",
  ]);
  let low, sat, batches;
  try {
    await deployFolder(url, c.folder);
    const target = new URL(`${url}${c.path}`);
    const req: PreparedRequest = prepareRequest(target, c.body, c.headers);
    const fn = c.folder.split("/").pop()!;
    progress(`${c.label}: platform at low load (1 client), ${Math.min(seconds, 5)} s`);
    low = await closedLoop(target, req, 1, Math.min(seconds, 5));
    const clients = saturatingClients(c);
    progress(`${c.label}: platform at saturation (${clients} clients), ${seconds} s`);
    await closedLoop(target, req, clients, 1); // warm the path
    const b0 = await scrapeBatches(url, fn);
    sat = await closedLoop(target, req, clients, seconds);
    const b1 = await scrapeBatches(url, fn);
    batches = (b1.sum - b0.sum) / Math.max(1, b1.count - b0.count);
    if (sat.errors) progress(`${c.label}: ${sat.errors} errors at saturation`);
  } finally {
    await stopChild(child);
    await Deno.remove(state, { recursive: true }).catch(() => {});
  }
  progress(`${c.label}: direct onnxruntime again (drift check), ${seconds} s`);
  const after = await runDirect(modelFile, c.batch, seconds, c.rowsPerRequest);
  const directItemsPerS = (before.itemsPerS + after.itemsPerS) / 2;
  const directP50Ms = (before.p50RequestMs + after.p50RequestMs) / 2;
  const platformItemsPerS = sat.perS * c.rowsPerRequest;
  const platformP50Ms = percentileOf(low.latencies, 0.5);
  return {
    label: c.label,
    model: c.model,
    batch: c.batch,
    rowsPerRequest: c.rowsPerRequest,
    directItemsPerS,
    directRunsItemsPerS: [before.itemsPerS, after.itemsPerS],
    platformItemsPerS,
    throughputRatio: platformItemsPerS / directItemsPerS,
    httpCeilingRequestsPerS: ceiling,
    platformRequestsPerS: sat.perS,
    directP50Ms,
    platformP50Ms,
    addedP50Ms: platformP50Ms - directP50Ms,
    platformP99Ms: percentileOf(sat.latencies, 0.99),
    meanExecutedBatch: batches,
    errors: sat.errors,
  };
}
