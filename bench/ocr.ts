/**
 * OCR throughput and latency (issue 23): the shipped `ocr` app (three functions on their own gpu-lets,
 * batched across images) against the same three ONNX sessions called directly in one process
 * (`bench/ocr_direct.ts`, on every core), on the same rendered images, at low load (one image at a time) and
 * high load (eight clients, closed loop). Images/s, p50 and p99 per arm; ratio = platform / direct images/s.
 */
import { deployFolder } from "../src/api/admin_client.ts";
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
  /** Per load: the platform with unprofiled gpu-lets of 1 core (the default) and of 2, and the direct arm. */
  loads: { clients: number; platform1: OcrArm; platform2: OcrArm; direct: OcrArm }[];
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

/**
 * The platform arm at every load: a server whose unprofiled gpu-lets (the OCR models have no CPU profile)
 * get `cores` cores each (`--cores-per-gpulet`), the four OCR folders deployed, warmed on every image.
 */
async function platform(
  bodies: string[],
  cores: number,
  seconds: number,
  progress: (line: string) => void,
): Promise<OcrArm[]> {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-bench-ocr-" });
  const server = await startServer({ port: 0, stateDir, log: () => {}, coresPerGpulet: cores });
  const post = async (path: string, body: string) => {
    const res = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  };
  try {
    for (const f of ["ocr_det", "ocr_cls", "ocr_rec", "ocr"]) {
      await deployFolder(server.url, `${PROJECT_ROOT}/functions/${f}`);
    }
    for (const b of bodies) await post("/functions/ocr/invoke", b); // warm-up
    const arms: OcrArm[] = [];
    for (const clients of LOADS) {
      progress(`ocr: platform (${cores} core(s) a gpu-let), ${clients} client(s), ${seconds} s`);
      const latencies: number[] = [];
      let next = 0, failed = 0;
      const t0 = performance.now(), end = t0 + seconds * 1000;
      await Promise.all(Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const s = performance.now();
          try {
            await post("/functions/ocr/invoke", bodies[next++ % bodies.length]);
            latencies.push(performance.now() - s);
          } catch {
            failed++;
          }
        }
      }));
      if (failed) progress(`ocr: ${failed} platform request(s) failed (not counted)`);
      arms.push(arm(latencies, (performance.now() - t0) / 1000));
    }
    return arms;
  } finally {
    await server.shutdown();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
}

/** Runs every arm at every load; `progress` gets a line per arm. */
export async function measureOcr(progress: (line: string) => void, seconds = 15): Promise<OcrResult> {
  const bodies = (await Promise.all(TEXT_CASES.map(renderText))).map((png) =>
    JSON.stringify({ image: encodeBase64(png) })
  );
  const one = await platform(bodies, 1, seconds, progress);
  const two = await platform(bodies, 2, seconds, progress);
  const loads: OcrResult["loads"] = [];
  for (const [i, clients] of LOADS.entries()) {
    progress(`ocr: direct, ${clients} client(s), ${seconds} s`);
    loads.push({ clients, platform1: one[i], platform2: two[i], direct: await direct(seconds, clients) });
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
    "Platform with its default, 1 core for each gpu-let of a function without a profile (the OCR models have",
    "none on this machine), and with `--cores-per-gpulet 2` (each of the three on both cores). Images/s, p50 and",
    "p99 (ms); ratio = platform images/s / direct images/s.",
    "",
    "| clients | platform, 1 core: images/s | p50 | p99 | platform, 2 cores: images/s | p50 | p99 | direct: images/s | p50 | p99 | ratio 1 core | ratio 2 cores |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...r.loads.map((l) => {
      const cells = (a: OcrArm) => `${f(a.imagesPerS, 2)} | ${f(a.p50Ms)} | ${f(a.p99Ms)}`;
      const ratio = (a: OcrArm) => f(a.imagesPerS / l.direct.imagesPerS, 2);
      return `| ${l.clients} | ${cells(l.platform1)} | ${cells(l.platform2)} | ${cells(l.direct)} | ${
        ratio(l.platform1)
      } | **${ratio(l.platform2)}** |`;
    }),
    "",
    "Target: ratio ≥ 0.8 at high load.",
    "",
  ].join("\n");
}
