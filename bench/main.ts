/**
 * `deno task bench [overhead] [--seconds N]`: runs benchmarks side by side in one run and writes
 * `bench/results/<name>.json` and `.md` (with the command that made them).
 *
 * The harness re-runs itself pinned to core 0 (with the controller and the load generator), so that
 * inference owns core 1 in every arm.
 */
import { parseArgs } from "../src/cli/args.ts";
import { onlineCpuCount } from "../src/runtime/cpu_device.ts";
import { findTaskset, PROJECT_ROOT } from "../src/runtime/worker_command.ts";
import { measureOverhead, type OverheadResult } from "./overhead.ts";

const PINNED = "GPULET_BENCH_PINNED";

function overheadMarkdown(results: OverheadResult[], command: string, seconds: number): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const rows = results.map((r) =>
    `| ${r.model} | ${r.batch} | ${f(r.directItemsPerS, 0)} | ${f(r.platformItemsPerS, 0)} | **${
      f(r.throughputRatio)
    }** | ` +
    `${f(r.meanExecutedBatch, 1)} | ${f(r.directP50Ms, 3)} | ${f(r.platformP50Ms, 3)} | **${f(r.addedP50Ms, 3)}** | ${
      f(r.platformP99Ms, 1)
    } |`
  );
  return [
    `# Data-plane overhead`,
    ``,
    `Command: \`${command}\` (${new Date().toISOString()}, ${onlineCpuCount()} cores, ${seconds} s per arm).`,
    `Inference on core 1 in both arms; harness, controller and load generator on core 0.`,
    ``,
    `| model | batch | direct items/s | platform items/s | ratio | mean executed batch | direct p50 b1 ms | platform p50 ms (1 client) | added p50 ms | platform p99 ms at saturation |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...rows,
    ``,
  ].join("\n");
}

if (import.meta.main) {
  const taskset = findTaskset();
  if (taskset && !Deno.env.get(PINNED) && onlineCpuCount() > 1) {
    const child = new Deno.Command(taskset, {
      args: ["-c", "0", Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, ...Deno.args],
      env: { [PINNED]: "1" },
    }).spawn();
    Deno.exit((await child.status).code);
  }
  const { values, positionals } = parseArgs(Deno.args, ["seconds"]);
  const which = positionals.length ? positionals : ["overhead"];
  const seconds = Number(values.seconds ?? 10);
  const command = `deno task bench ${Deno.args.join(" ")}`.trim();
  await Deno.mkdir(`${PROJECT_ROOT}/bench/results`, { recursive: true });
  if (which.includes("overhead")) {
    const lenetImage = Array.from({ length: 784 }, (_, i) => (i * 37) % 256);
    const results = [
      await measureOverhead(
        {
          folder: `${PROJECT_ROOT}/functions/lenet`,
          model: "lenet",
          path: "/functions/lenet/invoke",
          request: { image: lenetImage },
          batch: 32,
        },
        seconds,
        console.log,
      ),
      await measureOverhead(
        {
          folder: `${PROJECT_ROOT}/bench/functions/resnet18`,
          model: "resnet18",
          path: "/v2/models/resnet18/infer",
          request: {
            inputs: [{
              name: "input",
              shape: [1, 3, 224, 224],
              datatype: "FP32",
              data: Array.from({ length: 3 * 224 * 224 }, (_, i) => (i % 255) / 256),
            }],
          },
          batch: 8,
        },
        seconds,
        console.log,
      ),
    ];
    const md = overheadMarkdown(results, command, seconds);
    await Deno.writeTextFile(
      `${PROJECT_ROOT}/bench/results/overhead.json`,
      JSON.stringify({ command, seconds, results }, null, 2) + "\n",
    );
    await Deno.writeTextFile(`${PROJECT_ROOT}/bench/results/overhead.md`, md);
    console.log("\n" + md);
  }
}
