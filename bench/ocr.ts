/**
 * OCR throughput and latency (issue 23): the shipped `ocr` app (three functions on their own gpu-lets,
 * batched across images) against the same three ONNX sessions called directly in one process
 * (`bench/ocr_direct.ts`, on every core), on the same rendered images, at low load (one image at a time) and
 * high load (eight clients, closed loop). Images/s, p50 and p99 per arm; ratio = platform / direct images/s.
 */
import { bundleFolder } from "../src/functions/bundle.ts";
import { encodeBase64 } from "../src/functions/bundle.ts";
import { percentile } from "../src/loadgen/stats.ts";
import { onlineCpuCount } from "../src/runtime/cpu_device.ts";
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { startServer } from "../src/server.ts";
import { renderText, TEXT_CASES } from "../tests/fixtures/text_images.ts";

/** One arm at one load. */
export interface OcrArm {
  images: number;
  imagesPerS: number;
  p50Ms: number;
  p99Ms: number;
}

export interface OcrResult {
  seconds: number;
  cores: number;
  loads: { clients: number; platform: OcrArm; direct: OcrArm }[];
}

const LOADS = [1, 8];

function arm(latencies: number[], seconds: number): OcrArm {
  const l = [...latencies].sort((a, b) => a - b);
  return {
    images: l.length,
    imagesPerS: l.length / seconds,
    p50Ms: percentile(l, 0.5) ?? NaN,
    p99Ms: percentile(l, 0.99) ?? NaN,
  };
}

/** The direct arm in a process of its own, on every core (this one may be pinned to one). */
async function direct(seconds: number, clients: number): Promise<OcrArm> {
  const taskset = findTaskset();
  const cmd = [Deno.execPath(), "run", "-A", `${PROJECT_ROOT}/bench/ocr_direct.ts`, String(seconds), String(clients)];
  const [program, ...args] = taskset ? [taskset, "-c", `0-${onlineCpuCount() - 1}`, ...cmd] : cmd;
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "inherit" }).output();
  if (!out.success) throw new Error(`ocr_direct failed (${out.code})`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  return arm(r.latencies, r.seconds);
}

/** Runs both arms at every load; `progress` gets a line per arm. */
export async function measureOcr(progress: (line: string) => void, seconds = 20): Promise<OcrResult> {
  const bodies = (await Promise.all(TEXT_CASES.map(renderText))).map((png) =>
    JSON.stringify({ image: encodeBase64(png) })
  );
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-ocr-" });
  const server = await startServer({ port: 0, stateDir, log: () => {} });
  const loads: OcrResult["loads"] = [];
  try {
    for (const f of ["ocr_det", "ocr_cls", "ocr_rec", "ocr"]) {
      const res = await fetch(`${server.url}/admin/functions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(await bundleFolder(`${PROJECT_ROOT}/functions/${f}`)),
      });
      if (!res.ok) throw new Error(`deploy ${f}: ${res.status} ${await res.text()}`);
    }
    const invoke = async (body: string) => {
      const res = await fetch(`${server.url}/functions/ocr/invoke`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`ocr: ${res.status} ${text}`);
    };
    for (const b of bodies) await invoke(b); // warm-up
    for (const clients of LOADS) {
      progress(`ocr: platform, ${clients} client(s), ${seconds} s`);
      const latencies: number[] = [];
      let next = 0, failed = 0;
      const t0 = performance.now(), end = t0 + seconds * 1000;
      await Promise.all(Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const s = performance.now();
          try {
            await invoke(bodies[next++ % bodies.length]);
            latencies.push(performance.now() - s);
          } catch {
            failed++;
          }
        }
      }));
      if (failed) progress(`ocr: ${failed} platform request(s) failed (not counted)`);
      const platform = arm(latencies, (performance.now() - t0) / 1000);
      progress(`ocr: direct, ${clients} client(s), ${seconds} s`);
      loads.push({ clients, platform, direct: await direct(seconds, clients) });
    }
  } finally {
    await server.shutdown();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
  return { seconds, cores: onlineCpuCount(), loads };
}

/** The result as Markdown. */
export function ocrMarkdown(r: OcrResult, command: string): string {
  const f = (x: number, d = 0) => x.toFixed(d);
  return [
    "# OCR: the platform's app against the three models called directly",
    "",
    `Command: \`${command}\` (${new Date().toISOString()}); ${r.cores} cores, ${r.seconds} s per arm and load,`,
    `the ${TEXT_CASES.length} rendered images of \`tests/fixtures/text_images.ts\` in turn, closed loop. Platform:`,
    "`POST /functions/ocr/invoke` (ocr_det, ocr_cls, ocr_rec each on its own gpu-let, batched across images).",
    "Direct: one process on every core, the same pre- and post-processing, each image's crops in one batch.",
    "",
    "| clients | platform images/s | p50 (ms) | p99 (ms) | direct images/s | p50 (ms) | p99 (ms) | ratio |",
    "|---|---|---|---|---|---|---|---|",
    ...r.loads.map((l) =>
      `| ${l.clients} | ${f(l.platform.imagesPerS, 2)} | ${f(l.platform.p50Ms)} | ${f(l.platform.p99Ms)} | ${
        f(l.direct.imagesPerS, 2)
      } | ${f(l.direct.p50Ms)} | ${f(l.direct.p99Ms)} | **${f(l.platform.imagesPerS / l.direct.imagesPerS, 2)}** |`
    ),
    "",
    "Target: ratio ≥ 0.8 at high load.",
    "",
  ].join("\n");
}
