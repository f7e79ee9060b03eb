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
 *   --devices cuda     measure an NVIDIA GPU instead, parts as MPS shares (default 20,40,50,60,80,100) on
 *                      --gpu N (default 0); --mps start|existing and --profile NAME as for `start`;
 *                      output profiles/<gpu type>.csv (pairs: two gpu-lets of 50 % on the same GPU)
 */
import { parseArgs } from "./args.ts";
import { architectureReport, DEFAULT_MODELS_DIR, ensureModels, ZOO } from "../models/zoo.ts";
import { cpuParts, type Placement, profileLatency, profilePairs } from "../profiler/profiler.ts";
import { CudaSetupError, prepareCuda } from "../cuda/setup.ts";
import { systemRunner } from "../cuda/runner.ts";
import { cudaWorkerEnv } from "../cuda/worker_env.ts";
import { onlineCpuCount } from "../runtime/cpu_device.ts";
import { ortBindingPath, PROJECT_ROOT } from "../runtime/worker_command.ts";

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
    [
      "device",
      "devices",
      "models",
      "parts",
      "batches",
      "reps",
      "out",
      "pair-batch",
      "seconds",
      "max-point-seconds",
      "mps",
      "profile",
      "gpu",
      "state",
    ],
    ["pairs"],
  );
  const kind = (values.devices as string | undefined) ?? (values.device as string | undefined) ?? "cpu";
  if (kind !== "cpu" && kind !== "cuda") {
    console.error(`error: --devices ${kind}: profile measures cpu or cuda`);
    Deno.exit(2);
  }
  // On a GPU a part is an MPS share of one GPU: the worker's environment places it.
  let device = "cpu";
  let placement: ((part: number) => Placement) | undefined;
  let pairPlacement: Parameters<typeof profilePairs>[0]["pairPlacement"];
  let stopMps = () => Promise.resolve();
  if (kind === "cuda") {
    const mps = (values.mps as string | undefined) ?? "existing";
    try {
      if (mps !== "existing" && mps !== "start") throw new CudaSetupError(`--mps ${mps}: expected existing or start`);
      const setup = await prepareCuda({
        stateDir: (values.state as string | undefined) ?? ".gpulet",
        mps,
        profile: values.profile as string | undefined,
        profilesDir: `${PROJECT_ROOT}/profiles`,
        ortBinDir: ortBindingPath().replace(/\/[^/]*$/, ""),
        envPipeDir: Deno.env.get("CUDA_MPS_PIPE_DIRECTORY"),
        runner: systemRunner,
        needProfileFile: false,
      });
      stopMps = setup.stop;
      const gpu = setup.gpus[Number(values.gpu ?? 0)];
      if (!gpu) throw new CudaSetupError(`--gpu ${values.gpu}: this host has GPUs 0..${setup.gpus.length - 1}`);
      device = setup.profile;
      const place = (part: number): Placement => ({
        cores: [],
        cuda: true,
        env: cudaWorkerEnv({ gpuIndex: gpu.index, part, memoryMiB: gpu.memoryMiB / 2, pipeDir: setup.pipeDir }),
        label: `MPS ${part} % of GPU ${gpu.index}`,
      });
      placement = place;
      pairPlacement = { a: { ...place(50), part: 50 }, b: { ...place(50), part: 50 } };
    } catch (e) {
      if (e instanceof CudaSetupError) {
        console.error(e.message);
        Deno.exit(2);
      }
      throw e;
    }
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
        pairPlacement,
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
        parts: numbers(values.parts, kind === "cuda" ? [20, 40, 50, 60, 80, 100] : cpuParts(coreCount), "parts"),
        placement,
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
    await stopMps();
  }
}
