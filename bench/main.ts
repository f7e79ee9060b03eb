/**
 * `deno task bench [overhead] [protocols] [apphop] [gpulet] [interference] [planner] [apps] [ocr] [tail] [autoscale] [reliability] [cluster]
 * [--seconds N] [--case TEXT]`:
 * runs benchmarks side by side in one run and writes
 * `bench/results/<name>.json` and `.md` (with the command that made them).
 *
 * The harness re-runs itself pinned to core 0 (with the controller and the load generator), so that
 * inference owns core 1 in every arm.
 */
import { parseArgs } from "../src/cli/args.ts";
import { onlineCpuCount } from "../src/runtime/cpu_device.ts";
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { binaryInferRequest } from "../src/api/oip_client.ts";
import { fidelityMarkdown, interferenceMarkdown, measureFidelity, measureInterference } from "./interference.ts";
import { measurePlanner, plannerMarkdown } from "./planner.ts";
import { measureTail, tailMarkdown } from "./tail.ts";
import { autoscaleMarkdown, measureAutoscale } from "./autoscale.ts";
import { measureOverhead, type OverheadCase, type OverheadResult } from "./overhead.ts";
import { gpuletHopMarkdown, measureGpuletHop } from "./gpulet.ts";
import { appPeaksMarkdown, appsMarkdown, measureAppPeaks, measureApps } from "./apps.ts";
import { measureOcr, ocrMarkdown } from "./ocr.ts";
import { measureProtocols, protocolsMarkdown } from "./protocols.ts";
import { appHopMarkdown, measureAppHop } from "./app_hop.ts";
import { measureReliability, overloadSvg, reliabilityMarkdown } from "./reliability.ts";
import { clusterMarkdown, measureCluster } from "./cluster.ts";

const PINNED = "GPULET_BENCH_PINNED";

/** Writes `bench/results/<name>.json` (the measurements, with the command) and `<name>.md`, and shows the latter. */
async function writeResult(name: string, json: Record<string, unknown>, md: string): Promise<void> {
  await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/${name}.json`, JSON.stringify(json, null, 2) + "\n");
  await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/${name}.md`, md);
  console.log("\n" + md);
}

function overheadMarkdown(results: OverheadResult[], command: string, seconds: number): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const rows = results.map((r) =>
    `| ${r.label} | ${r.rowsPerRequest} | ${r.batch} | ${f(r.directItemsPerS, 0)} (${
      r.directRunsItemsPerS.map((x) => f(x, 0)).join(", ")
    }) | ${f(r.platformItemsPerS, 0)} | **${f(r.throughputRatio)}** | ${f(r.platformRequestsPerS, 0)} / ${
      f(r.httpCeilingRequestsPerS, 0)
    } = **${f(r.platformRequestsPerS / r.httpCeilingRequestsPerS)}** | ${f(r.meanExecutedBatch, 1)} | ${
      f(r.directP50Ms, 3)
    } | ${f(r.platformP50Ms, 3)} | **${f(r.addedP50Ms, 3)}** | ${f(r.platformP99Ms, 1)} |`
  );
  return [
    `# Data-plane overhead`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}, ${onlineCpuCount()} cores, ${seconds} s per arm).`,
    `Inference on core 1 in every arm; load generator, controller and echo server on core 0. Direct = in-process`,
    `onnxruntime-node at the same batch size, run before and after the platform arm (both shown; the mean is used).`,
    `HTTP ceiling = requests/s of a hono server that only parses the same request, with the same load generator.`,
    ``,
    `| case | rows/request | batch | direct items/s (before, after) | platform items/s | ratio | platform req/s / HTTP ceiling req/s = share of the ceiling | mean executed batch | direct p50 ms (one request's rows) | platform p50 ms (1 client) | added p50 ms | platform p99 ms at saturation |`,
    `|---|---|---|---|---|---|---|---|---|---|---|---|`,
    ...rows,
    ``,
  ].join("\n");
}

/** The cases of `deno task bench overhead`. */
function overheadCases(): OverheadCase[] {
  const image = Array.from({ length: 784 }, (_, i) => (i * 37) % 256);
  const lenetRows = 8;
  const lenetBatch = new Float32Array(lenetRows * 784).map((_, i) => image[i % 784] / 255);
  const resnetInput = new Float32Array(3 * 224 * 224).map((_, i) => (i % 255) / 256);
  const oip = (name: string, shape: number[], data: Float32Array) =>
    binaryInferRequest([{ name, datatype: "FP32", shape, data }]);
  const lenetOip = oip("input", [lenetRows, 1, 28, 28], lenetBatch);
  const resnetOip = oip("input", [1, 3, 224, 224], resnetInput);
  return [
    {
      label: "lenet, JSON invoke",
      folder: `${PROJECT_ROOT}/functions/lenet`,
      model: "lenet",
      path: "/functions/lenet/invoke",
      body: JSON.stringify({ image }),
      headers: { "content-type": "application/json" },
      rowsPerRequest: 1,
      batch: 32,
    },
    {
      label: "lenet, OIP binary, 8 images per request",
      folder: `${PROJECT_ROOT}/functions/lenet`,
      model: "lenet",
      path: "/v2/models/lenet/infer",
      body: lenetOip.body,
      headers: lenetOip.headers,
      rowsPerRequest: lenetRows,
      batch: 32,
    },
    {
      label: "resnet18, OIP binary",
      folder: `${PROJECT_ROOT}/bench/functions/resnet18`,
      model: "resnet18",
      path: "/v2/models/resnet18/infer",
      body: resnetOip.body,
      headers: resnetOip.headers,
      rowsPerRequest: 1,
      batch: 8,
    },
  ];
}

if (import.meta.main) {
  const taskset = findTaskset();
  // The cluster benchmark runs whole nodes as processes: they get every core, not core 0's share.
  const unpinned = Deno.args.length > 0 && Deno.args.every((a) => a === "cluster");
  if (taskset && !Deno.env.get(PINNED) && onlineCpuCount() > 1 && !unpinned) {
    const child = new Deno.Command(taskset, {
      args: ["-c", "0", Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, ...Deno.args],
      env: { [PINNED]: "1" },
    }).spawn();
    Deno.exit((await child.status).code);
  }
  const { values, positionals } = parseArgs(Deno.args, ["seconds", "case"]);
  const which = positionals.length ? positionals : ["overhead"];
  const seconds = Number(values.seconds ?? 10);
  const command = `deno task bench ${Deno.args.join(" ")}`.trim();
  await Deno.mkdir(`${PROJECT_ROOT}/bench/results`, { recursive: true });
  if (which.includes("overhead")) {
    const results: OverheadResult[] = [];
    for (const c of overheadCases()) {
      if (typeof values.case === "string" && !c.label.includes(values.case)) continue;
      results.push(await measureOverhead(c, seconds, console.log));
    }
    const md = overheadMarkdown(results, command, seconds);
    await writeResult("overhead", { command, seconds, results }, md);
  }
  if (which.includes("overhead") || which.includes("protocols")) {
    const results = await measureProtocols(console.log, seconds);
    await writeResult("protocols", { command, seconds, results }, protocolsMarkdown(results, command, seconds));
  }
  if (which.includes("cluster")) {
    const result = await measureCluster(console.log);
    await writeResult("cluster", { command, ...result }, clusterMarkdown(result, command));
  }
  if (which.includes("overhead") || which.includes("apphop")) {
    const result = await measureAppHop(console.log);
    await writeResult("app_hop", { command, ...result }, appHopMarkdown(result, command));
  }
  if (which.includes("gpulet")) {
    const result = await measureGpuletHop(console.log);
    await writeResult("gpulet", { command, ...result }, gpuletHopMarkdown(result, command));
  }
  if (which.includes("interference")) {
    const results = await measureInterference(console.log);
    const fidelity = await measureFidelity();
    const md = interferenceMarkdown(results, command) + "\n" + fidelityMarkdown(fidelity);
    await writeResult("interference", { command, results, fidelity }, md);
  }
  if (which.includes("autoscale")) {
    const results = await measureAutoscale(console.log, typeof values.case === "string" ? values.case : undefined);
    const md = autoscaleMarkdown(results, command);
    await writeResult("autoscale", { command, results }, md);
  }
  if (which.includes("planner")) {
    const result = await measurePlanner(console.log);
    const md = plannerMarkdown(result, command);
    await writeResult("planner", { command, ...result }, md);
  }
  if (which.includes("apps")) {
    const rows = await measureApps(console.log);
    const peaks = await measureAppPeaks(console.log);
    await writeResult("apps", { command, rows, peaks }, appsMarkdown(rows, command) + "\n" + appPeaksMarkdown(peaks));
  }
  if (which.includes("ocr")) {
    const result = await measureOcr(console.log, values.seconds ? seconds : 15);
    await writeResult("ocr", { command, ...result }, ocrMarkdown(result, command));
  }
  if (which.includes("tail")) {
    const result = await measureTail(console.log);
    const md = tailMarkdown(result, command);
    await writeResult("tail", { command, ...result }, md);
  }
  if (which.includes("reliability")) {
    const result = await measureReliability(console.log, values.seconds ? seconds : 10);
    const md = reliabilityMarkdown(result, command);
    await writeResult("reliability", { command, ...result }, md);
    await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/reliability-overload.svg`, overloadSvg(result));
  }
}
