/**
 * Where a planned gpu-let runs: the device backends of the autoscaled controller. A backend reserves a
 * gpu-let's share of a device and starts one function's executor on it.
 *
 * Every gpu-let is one process serving all its functions in turns (a time-shared gpu-let takes no more of its
 * device than its part), or one simulated gpu-let.
 * - `cpu:N`: the machine's cores split into N devices; a gpu-let of part p gets p % of its device's cores
 *   (at least one), its process pinned to them.
 * - `sim:<profile>xN`: N simulated GPUs ({@link SimDevice}); a time-shared gpu-let is one simulated gpu-let
 *   whose functions take turns.
 * - `cuda`: this host's NVIDIA GPUs under MPS; a gpu-let's process gets its GPU, its share of the SMs and its
 *   device memory from its environment ({@link cudaWorkerEnv}).
 */
import { loadProfile } from "../planner/profiles.ts";
import type { CpuDevice } from "../runtime/cpu_device.ts";
import { type GpuletHandle, gpuletOf } from "../runtime/executor.ts";
import { SimDevice, type SimGpulet } from "../sim/sim_device.ts";
import { zooSignature } from "../models/zoo.ts";
import type { CudaSetup } from "../cuda/setup.ts";
import { cudaWorkerEnv, modelMemoryMiB } from "../cuda/worker_env.ts";
import type { MemoryLimits } from "../planner/layout.ts";
import { type Deployment, startGpulet } from "./deployment.ts";
import type { InterferenceModel } from "../planner/interference.ts";
import type { LatencyModel } from "../planner/latency_model.ts";

/** A reserved share of a device; released when the gpu-let stops. */
export interface GpuletLease {
  gpu: number;
  part: number;
  /** Cores (cpu) it is pinned to. */
  cores?: number[];
  /** The simulated gpu-let (sim). */
  sim?: SimGpulet;
  release(): void;
}

/** A device kind the fleet can place gpu-lets on. */
export interface Backend {
  /** Profile (device) name plans are made for, e.g. `h100`. */
  readonly device: string;
  /** `cpu`, `sim` or `cuda`. */
  readonly kind: "cpu" | "sim" | "cuda";
  readonly gpus: number;
  readonly latency: LatencyModel;
  readonly interference?: InterferenceModel;
  /** Time dilation of simulated devices (1 on real ones): SLOs are multiplied by it. */
  readonly timeScale: number;
  /** Why `model` cannot be served here, or undefined if it can. */
  refuse(model: string): string | undefined;
  lease(gpu: number, part: number): GpuletLease;
  /** Starts and warms a gpu-let serving `deps` (in turns) on its lease: one executor per deployment. */
  start(deps: Deployment[], lease: GpuletLease): Promise<GpuletHandle>;
  /** Device memory the planner must respect (real GPUs); filled in per model by {@link noteModel}. */
  readonly memory?: MemoryLimits;
  /** Tells the backend the size of a model file about to be served (for its memory budget). */
  noteModel?(model: string, fileBytes: number): void;
  /** Releases what the backend holds (e.g. stops the MPS daemon it started). */
  close?(): Promise<void>;
}

/** A parsed `--devices` value. */
export type DeviceSpec =
  | { kind: "cpu"; devices: number }
  | { kind: "sim"; profile: string; gpus: number }
  | { kind: "cuda" };

/**
 * Parses `cpu` (= `cpu:1`), `cpu:N`, `sim:<profile>x<N>` or `cuda`; throws a message that says what is
 * accepted.
 */
export function parseDevices(spec: string): DeviceSpec {
  if (spec === "cpu") return { kind: "cpu", devices: 1 };
  if (spec === "cuda") return { kind: "cuda" };
  const cpu = /^cpu:([1-9][0-9]*)$/.exec(spec);
  if (cpu) return { kind: "cpu", devices: Number(cpu[1]) };
  const sim = /^sim:([a-z0-9_-]+)x([1-9][0-9]*)$/.exec(spec);
  if (sim && Number(sim[2]) <= 256) return { kind: "sim", profile: sim[1], gpus: Number(sim[2]) };
  throw new Error(
    `--devices ${spec}: expected cpu (this machine's cores, one device), cpu:N (N devices of its cores), ` +
      `sim:<profile>xN or cuda`,
  );
}

/** The simulated backend. */
export async function simBackend(
  spec: { profile: string; gpus: number },
  profilesDir: string,
  timeScale: number,
): Promise<Backend> {
  const { latency, interference } = await loadProfile(profilesDir, spec.profile);
  const sim = new SimDevice({ profile: spec.profile, gpus: spec.gpus, latency, interference, scale: timeScale });
  return {
    device: spec.profile,
    kind: "sim",
    gpus: spec.gpus,
    latency,
    interference,
    timeScale,
    refuse: (model) =>
      !latency.has(model)
        ? `model "${model}" has no profile on ${spec.profile} (profiled: ${latency.models().join(", ")})`
        : !zooSignature(model)
        ? `model "${model}" is not a generated zoo model, so its signature is unknown`
        : undefined,
    lease: (gpu, part) => ({ gpu, part, sim: sim.gpulet(gpu, part), release: () => {} }),
    start: (deps, lease) => {
      const executors = deps.map((dep) => {
        const model = dep.record.manifest.model;
        const sig = zooSignature(model)!;
        const batchable = [...sig.inputs, ...sig.outputs].every((t) => t.shape[0] === -1);
        return sim.executor(lease.sim!, model, { ...sig, batchable }, dep.name);
      });
      return Promise.resolve(gpuletOf(executors.map((e) => e.id).join("+"), executors));
    },
  };
}

/** The CPU backend: `devices` groups of this machine's cores. */
export async function cpuBackend(devices: number, cpu: CpuDevice, profilesDir: string): Promise<Backend> {
  const perDevice = Math.max(1, Math.floor(cpu.coreCount / devices));
  // The profile's parts are of the whole machine; a device is 1/devices of it.
  const { latency, interference } = await loadProfile(profilesDir, "cpu", devices);
  return {
    device: "cpu",
    kind: "cpu",
    gpus: devices,
    latency,
    interference,
    timeScale: 1,
    // Any model: one without a CPU profile gets fixed gpu-lets instead of planned ones (see `Fleet`).
    refuse: () => undefined,
    lease: (gpu, part) => {
      const group = Array.from({ length: perDevice }, (_, i) => (gpu * perDevice + i) % cpu.coreCount);
      const want = Math.max(1, Math.round((part / 100) * perDevice));
      const load = cpu.load();
      const cores = [...group].sort((a, b) => load[a] - load[b] || a - b).slice(0, want).sort((a, b) => a - b);
      cpu.take(cores);
      let released = false;
      return {
        gpu,
        part,
        cores,
        release: () => {
          if (!released) cpu.release(cores);
          released = true;
        },
      };
    },
    start: (deps, lease) => startGpulet(deps, { cores: lease.cores! }),
  };
}

/**
 * The CUDA backend: the GPUs {@link CudaSetup} found, planned with their profile, device memory budgeted per
 * worker process (`contextMiB` plus the model's share), every gpu-let placed by its worker's environment.
 */
export async function cudaBackend(setup: CudaSetup, profilesDir: string, contextMiB: number): Promise<Backend> {
  const { latency, interference } = await loadProfile(profilesDir, setup.profile);
  const memory: MemoryLimits = {
    // The smallest GPU bounds them all (plans treat GPUs as interchangeable).
    deviceMb: Math.min(...setup.gpus.map((g) => g.memoryMiB)),
    contextMb: contextMiB,
    modelMb: {},
  };
  return {
    device: setup.profile,
    kind: "cuda",
    gpus: setup.gpus.length,
    latency,
    interference,
    timeScale: 1,
    memory,
    noteModel: (model, bytes) => {
      memory.modelMb[model] = modelMemoryMiB(bytes);
    },
    refuse: (model) =>
      latency.has(model)
        ? undefined
        : `model "${model}" has no ${setup.profile} profile (profiled: ${latency.models().join(", ")})`,
    lease: (gpu, part) => ({ gpu, part, release: () => {} }),
    start: (deps, lease) => {
      // One process holds every model of its gpu-let: one context, each model's share.
      const models = deps.reduce((mb, dep) => mb + (memory.modelMb[dep.record.manifest.model] ?? 0), 0);
      const cudaEnv = cudaWorkerEnv({
        gpuIndex: setup.gpus[lease.gpu].index,
        part: lease.part,
        memoryMiB: contextMiB + models,
        pipeDir: setup.pipeDir,
      });
      return startGpulet(deps, { cores: [], cudaEnv });
    },
    close: () => setup.stop(),
  };
}
