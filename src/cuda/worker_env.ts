/**
 * The environment that places one gpu-let worker on its GPU share: per process, so two gpu-lets on one GPU
 * never race on a daemon-wide setting (the original set the thread percentage on the MPS daemon). Pure.
 */

export interface CudaPlacement {
  /** nvidia-smi index of the GPU. */
  gpuIndex: number;
  /** The gpu-let's part (% of the GPU's SMs). */
  part: number;
  /** Device memory this process may pin (MiB): its context and model, as planned. */
  memoryMiB: number;
  /** The MPS daemon's pipe directory. */
  pipeDir: string;
}

/**
 * `CUDA_VISIBLE_DEVICES` (the process sees only its GPU, as device 0), `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`
 * (its share of the SMs), `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT` (its memory, so a plan's budget holds) and
 * `CUDA_MPS_PIPE_DIRECTORY` (the daemon to join).
 */
export function cudaWorkerEnv(p: CudaPlacement): Record<string, string> {
  if (!(p.part > 0 && p.part <= 100)) throw new Error(`part ${p.part}: expected 0 < part ≤ 100`);
  return {
    CUDA_VISIBLE_DEVICES: String(p.gpuIndex),
    CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: String(Math.max(1, Math.round(p.part))),
    CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: `0=${Math.ceil(p.memoryMiB)}M`,
    CUDA_MPS_PIPE_DIRECTORY: p.pipeDir,
  };
}

/** Default per-process device memory beyond the model: CUDA context, cuDNN/cuBLAS workspaces (MiB). */
export const DEFAULT_CONTEXT_MIB = 600;

/** Planned device memory for a model file of `bytes`: weights twice over (weights and activations/arena). */
export function modelMemoryMiB(bytes: number): number {
  return Math.ceil((2 * bytes) / (1024 * 1024)) + 64;
}
