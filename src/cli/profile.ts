/**
 * `deno task profile`: measures this machine's device with real gpu-let workers and writes
 * `profiles/<device>.csv` (and, with `--pairs`, `profiles/<device>-pairs.csv`). Resumable: points already in
 * the output are kept and skipped.
 *
 *   --models a,b,…     zoo models (default: the eight the paper served)
 *   --parts 50,100     parts in % (default: one per core count)
 *   --batches 1,2,…    batch sizes (default 1,2,4,8,16,32)
 *   --reps N           timed runs per point (default 5; at least 3 past --max-point-seconds)
 *   --pairs            measure co-location instead (two gpu-lets on the two halves of the cores)
 *   --pair-batch N     batch size for pairs (default 8); --seconds S per phase (default 2)
 *   --out FILE         output (default profiles/cpu.csv or profiles/cpu-pairs.csv)
 */
import { parseArgs } from "./args.ts";
import { architectureReport, DEFAULT_MODELS_DIR, ensureModels, ZOO } from "../models/zoo.ts";
import { cpuParts, profileLatency, profilePairs } from "../profiler/profiler.ts";
import { onlineCpuCount } from "../runtime/cpu_device.ts";
import { PROJECT_ROOT } from "../runtime/worker_command.ts";

/** The models of the Gpu-let evaluation, in the zoo. */
export const PAPER_MODELS = [
  "lenet",
  "googlenet",
  "resnet50",
  "vgg16",
  "mobilenet_v2",
  "mnasnet1_0",
  "densenet161",
  "bert",
];

const list = (v: unknown, fallback: string[]) => (typeof v === "string" ? v.split(",").filter(Boolean) : fallback);
const numbers = (v: unknown, fallback: number[], what: string) => {
  const xs = list(v, fallback.map(String)).map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`--${what} takes positive integers`);
  return xs;
};

if (import.meta.main) {
  const { values } = parseArgs(
    Deno.args,
    ["device", "models", "parts", "batches", "reps", "out", "pair-batch", "seconds", "max-point-seconds"],
    ["pairs"],
  );
  const device = (values.device as string | undefined) ?? "cpu";
  if (device !== "cpu") {
    console.error(`error: device "${device}" is not available on this machine (no GPU); use --device cpu`);
    Deno.exit(2);
  }
  const models = list(values.models, PAPER_MODELS);
  for (const m of models) {
    if (!ZOO[m]) {
      console.error(`error: unknown model "${m}" (zoo: ${Object.keys(ZOO).join(", ")})`);
      Deno.exit(2);
    }
  }
  const coreCount = onlineCpuCount();
  const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-profile-" });
  const log = (line: string) => console.log(line);
  try {
    await ensureModels(models, DEFAULT_MODELS_DIR, log);
    const modelFile = (m: string) => `${DEFAULT_MODELS_DIR}/${m}.onnx`;
    if (values.pairs) {
      const out = (values.out as string | undefined) ?? `${PROJECT_ROOT}/profiles/${device}-pairs.csv`;
      const rows = await profilePairs({
        models,
        batch: numbers(values["pair-batch"], [8], "pair-batch")[0],
        seconds: Number(values.seconds ?? 2),
        coreCount,
        modelFile,
        runtimeDir,
        outFile: out,
        progress: log,
      });
      log(`${rows.length} pairs in ${out}`);
    } else {
      const out = (values.out as string | undefined) ?? `${PROJECT_ROOT}/profiles/${device}.csv`;
      const rows = await profileLatency({
        models,
        parts: numbers(values.parts, cpuParts(coreCount), "parts"),
        batches: numbers(values.batches, [1, 2, 4, 8, 16, 32], "batches"),
        reps: numbers(values.reps, [5], "reps")[0],
        maxPointSeconds: Number(values["max-point-seconds"] ?? 20),
        coreCount,
        modelFile,
        cost: (m) => (ZOO[m].kind === "generated" ? architectureReport(m).macs ?? 1e9 : 1e9),
        runtimeDir,
        outFile: out,
        progress: log,
      });
      log(`${rows.length} points in ${out}`);
    }
  } finally {
    await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
  }
}
