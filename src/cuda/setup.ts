/**
 * Getting ready to run gpu-lets on NVIDIA GPUs with MPS: find the GPUs, check what MPS needs, find or start
 * the MPS control daemon, check that onnxruntime has its CUDA provider. Each failure stops start-up with one
 * message that says how to fix it; `--devices cuda` never falls back to the CPU. gpulet never changes a GPU's
 * compute mode or MIG settings.
 */
import { GPU_QUERY, type GpuInfo, parseGpuList } from "./nvidia_smi.ts";
import type { CommandRunner } from "./runner.ts";

/** A reason `--devices cuda` cannot start, with its fix. */
export class CudaSetupError extends Error {}

/** `--mps`: use the daemon that runs (default) or start gpulet's own under the state directory. */
export type MpsMode = "existing" | "start";

export interface CudaSetupOptions {
  stateDir: string;
  mps: MpsMode;
  /** Profile name to plan with (`profiles/<name>.csv`); default: from the GPUs' type. */
  profile?: string;
  profilesDir: string;
  /** Folder of onnxruntime-node's native binding (where the CUDA provider library must be). */
  ortBinDir: string;
  /** The environment's `CUDA_MPS_PIPE_DIRECTORY`, if set. */
  envPipeDir?: string;
  runner: CommandRunner;
  /** False when measuring a profile (it need not exist yet). Default true. */
  needProfileFile?: boolean;
}

/** GPUs ready for gpu-lets, and how to reach (and, if gpulet started it, stop) the MPS daemon. */
export interface CudaSetup {
  gpus: GpuInfo[];
  profile: string;
  /** `CUDA_MPS_PIPE_DIRECTORY` for every worker. */
  pipeDir: string;
  /** True when gpulet started the daemon (it stops it on shutdown). */
  startedMps: boolean;
  /** Stops the daemon if gpulet started it. */
  stop(): Promise<void>;
}

/** The MPS daemon's default pipe directory. */
export const DEFAULT_MPS_PIPE_DIR = "/tmp/nvidia-mps";
/** The CUDA provider library onnxruntime-node loads for `executionProviders: ["cuda"]`. */
export const ORT_CUDA_PROVIDER = "libonnxruntime_providers_cuda.so";
const MPS_CONTROL = "nvidia-cuda-mps-control";

/** Where gpulet's own MPS daemon keeps its pipes and logs. */
export function mpsDirs(stateDir: string): { pipeDir: string; logDir: string } {
  return { pipeDir: `${stateDir}/mps/pipe`, logDir: `${stateDir}/mps/log` };
}

const firstLine = (s: string) => s.trim().split("\n")[0] ?? "";

/** Runs `nvidia-smi` and parses its GPUs; a missing driver or no GPU is a {@link CudaSetupError}. */
export async function discoverGpus(runner: CommandRunner): Promise<GpuInfo[]> {
  let out;
  try {
    out = await runner.run("nvidia-smi", GPU_QUERY);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CudaSetupError(
        "--devices cuda: no NVIDIA driver found (nvidia-smi is not on PATH). Install the NVIDIA driver, " +
          "or start with --devices cpu.",
      );
    }
    throw e;
  }
  if (out.code !== 0) {
    throw new CudaSetupError(
      `--devices cuda: nvidia-smi failed (exit ${out.code}): ${firstLine(out.stderr || out.stdout)}. ` +
        "The NVIDIA driver must be loaded and nvidia-smi must work; or start with --devices cpu.",
    );
  }
  const gpus = parseGpuList(out.stdout);
  if (gpus.length === 0) {
    throw new CudaSetupError(
      "--devices cuda: nvidia-smi lists no GPU. Make the GPUs visible to this host or container " +
        "(e.g. docker run --gpus all), or start with --devices cpu.",
    );
  }
  return gpus;
}

/** What MPS needs of each GPU, checked (never changed). */
export function checkGpusForMps(gpus: GpuInfo[]): void {
  for (const g of gpus) {
    if (g.migMode === "Enabled") {
      throw new CudaSetupError(
        `--devices cuda: GPU ${g.index} (${g.name}) has MIG enabled; MPS gpu-lets need it disabled. gpulet never ` +
          `changes it: an administrator can (nvidia-smi -i ${g.index} -mig 0, then reset the GPU).`,
      );
    }
    if (g.computeMode === "Prohibited") {
      throw new CudaSetupError(
        `--devices cuda: GPU ${g.index} (${g.name}) is in compute mode Prohibited: no process may use it. gpulet ` +
          `never changes it: an administrator can (nvidia-smi -i ${g.index} -c DEFAULT).`,
      );
    }
  }
}

/** The profile to plan with: given, or the GPUs' common type; its file must exist unless `mustExist` is false. */
export async function chooseProfile(
  gpus: GpuInfo[],
  given: string | undefined,
  profilesDir: string,
  runner: CommandRunner,
  mustExist = true,
): Promise<string> {
  let profile = given;
  if (!profile) {
    const types = [...new Set(gpus.map((g) => g.type))];
    if (types.length !== 1 || types[0] === undefined) {
      throw new CudaSetupError(
        `--devices cuda: cannot tell which profile fits ${
          [...new Set(gpus.map((g) => g.name))].join(" and ")
        }; pass --profile NAME (profiles/NAME.csv).`,
      );
    }
    profile = types[0];
  }
  if (mustExist && !(await runner.exists(`${profilesDir}/${profile}.csv`))) {
    throw new CudaSetupError(
      `--devices cuda: no profile ${profilesDir}/${profile}.csv. Measure one on this GPU ` +
        `(deno task profile --devices cuda --out profiles/${profile}.csv) or pass --profile NAME.`,
    );
  }
  return profile;
}

/** onnxruntime-node must have been installed with its CUDA provider. */
export async function checkOrtCuda(ortBinDir: string, runner: CommandRunner): Promise<void> {
  if (!(await runner.exists(`${ortBinDir}/${ORT_CUDA_PROVIDER}`))) {
    throw new CudaSetupError(
      `--devices cuda: onnxruntime-node was installed without its CUDA provider (no ${ORT_CUDA_PROVIDER} in ` +
        `${ortBinDir}). Install it with CUDA on a host with internet: ONNXRUNTIME_NODE_INSTALL=cuda12 ` +
        `npm install onnxruntime-node (with Deno: deno install --allow-scripts=npm:onnxruntime-node), then bring ` +
        `node_modules here.`,
    );
  }
}

/** Finds the running MPS control daemon, or starts gpulet's own (`--mps start`). */
export async function ensureMps(
  opts: Pick<CudaSetupOptions, "stateDir" | "mps" | "envPipeDir" | "runner">,
): Promise<{ pipeDir: string; startedMps: boolean; stop(): Promise<void> }> {
  const { runner } = opts;
  if (opts.mps === "existing") {
    const pipeDir = opts.envPipeDir ?? DEFAULT_MPS_PIPE_DIR;
    if (!(await runner.exists(`${pipeDir}/control`))) {
      throw new CudaSetupError(
        `--devices cuda: no MPS control daemon (no ${pipeDir}/control). Start one (${MPS_CONTROL} -d, as the ` +
          `user that runs gpulet) or pass --mps start to have gpulet start its own and stop it on shutdown.`,
      );
    }
    return { pipeDir, startedMps: false, stop: () => Promise.resolve() };
  }
  const { pipeDir, logDir } = mpsDirs(opts.stateDir);
  const env = { CUDA_MPS_PIPE_DIRECTORY: pipeDir, CUDA_MPS_LOG_DIRECTORY: logDir };
  if (!(await runner.exists(`${pipeDir}/control`))) {
    await Deno.mkdir(pipeDir, { recursive: true });
    await Deno.mkdir(logDir, { recursive: true });
    let out;
    try {
      out = await runner.run(MPS_CONTROL, ["-d"], { env });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new CudaSetupError(
          `--mps start: ${MPS_CONTROL} is not on PATH. It comes with the NVIDIA driver's CUDA tools ` +
            `(e.g. the nvidia-cuda-mps package); install them, or start a daemon yourself and drop --mps start.`,
        );
      }
      throw e;
    }
    if (out.code !== 0) {
      throw new CudaSetupError(
        `--mps start: ${MPS_CONTROL} -d failed (exit ${out.code}): ${firstLine(out.stderr || out.stdout)}. ` +
          `See ${logDir}/control.log.`,
      );
    }
  }
  let stopped = false;
  return {
    pipeDir,
    startedMps: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await runner.run(MPS_CONTROL, [], { env, stdin: "quit\n" }).catch(() => {});
    },
  };
}

/** Every check, in order; the MPS daemon is started last, once nothing else can fail. */
export async function prepareCuda(opts: CudaSetupOptions): Promise<CudaSetup> {
  const gpus = await discoverGpus(opts.runner);
  checkGpusForMps(gpus);
  const profile = await chooseProfile(gpus, opts.profile, opts.profilesDir, opts.runner, opts.needProfileFile ?? true);
  await checkOrtCuda(opts.ortBinDir, opts.runner);
  const mps = await ensureMps(opts);
  return { gpus, profile, ...mps };
}
