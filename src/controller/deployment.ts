/**
 * One live version of a function: its admission dispatcher, fed by the gpu-lets the fleet runs for it
 * (`fleet.ts` starts, routes, restarts and retires them), and how a gpu-let process is told to load it.
 */
import { Dispatcher } from "../admission/dispatcher.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Answer, Payload } from "../admission/request.ts";
import { isBundledModel } from "../functions/manifest.ts";
import type { FunctionRecord } from "../functions/registry.ts";
import { warmBatches } from "../planner/fixed_layout.ts";
import type { FunctionConfig, ModelInfo } from "../runtime/protocol.ts";
import type { Executor, GpuletHandle } from "../runtime/executor.ts";
import { GpuletProcess } from "../runtime/worker.ts";

/** A batch unanswered this long means a hung gpu-let: at least this (ms), or this many deadlines. */
const HANG_MIN_MS = 10_000;
const HANG_DEADLINES = 5;
/** Default bound on draining a stopping version (ms). */
const DRAIN_TIMEOUT_MS = 30_000;

export interface DeploymentOptions {
  modelsDir: string;
  runtimeDir: string;
  metrics: Metrics;
  maxQueueRows: number;
  /** Batches in flight per gpu-let. */
  depth: number;
  log: (line: string) => void;
  /** SLOs are multiplied by this (simulated devices with dilated time). Default 1. */
  sloScale?: number;
  /** Called on every request submitted, admitted or not (the autoscaler's demand). */
  onArrival?: (name: string) => void;
  /** A batch unanswered this long (ms) means a hung gpu-let. Default: max(10 s, 5 × the deadline). */
  hangTimeoutMs?: number;
  /** A gpu-let that is not loaded and warm in this long (ms) fails to start. Default 120 s. */
  startTimeoutMs?: number;
  /** Shadow runs of benchmarks: admit everything (see `ControllerOptions.admitAll`). */
  admitAll?: boolean;
}

/** Where a function's model file is. */
export function modelPath(rec: FunctionRecord, modelsDir: string): string {
  return isBundledModel(rec.manifest.model)
    ? `${rec.dir}/${rec.manifest.model}`
    : `${modelsDir}/${rec.manifest.model}.onnx`;
}

export class Deployment {
  readonly dispatcher: Dispatcher;
  model!: ModelInfo;
  /** Why a planned gpu-let of this version could not start. */
  startError?: Error;

  constructor(readonly record: FunctionRecord, private readonly opts: DeploymentOptions) {
    this.dispatcher = new Dispatcher({
      name: record.name,
      maxQueueRows: opts.maxQueueRows,
      admitAll: opts.admitAll,
      observer: opts.metrics.observerFor(record.name, String(record.version)),
      hangTimeoutMs: opts.hangTimeoutMs ??
        Math.max(HANG_MIN_MS, HANG_DEADLINES * record.manifest.sloMs * (opts.sloScale ?? 1)),
      onWorkerLost: (w) => {
        // A broken connection to a live process: kill it so the exit handler respawns it.
        if (!w.stopping) w.kill();
      },
    });
  }

  get name(): string {
    return this.record.name;
  }

  get version(): number {
    return this.record.version;
  }

  /** True once at least one warm gpu-let serves this version. */
  get ready(): boolean {
    return this.dispatcher.getSlots().length > 0;
  }

  /** Where gpu-let processes keep their sockets, and how long they may take to warm (ms). */
  get processOptions(): { runtimeDir: string; startTimeoutMs?: number } {
    return { runtimeDir: this.opts.runtimeDir, startTimeoutMs: this.opts.startTimeoutMs };
  }

  /** How a gpu-let process is told to load this version. */
  functionConfig(): FunctionConfig {
    const m = this.record.manifest;
    return {
      name: this.name,
      functionDir: this.record.dir,
      functionFile: `${this.record.dir}/function.ts`,
      modelFile: modelPath(this.record, this.opts.modelsDir),
      warmBatches: warmBatches(m.maxBatch),
      manifest: m,
    };
  }

  /** Takes an executor the fleet started for this version: it learns the model from it. */
  adopt(executor: Executor): void {
    this.model ??= executor.model;
  }

  /** The deadline of a request (ms): the SLO, dilated on simulated devices. */
  get deadlineMs(): number {
    return this.record.manifest.sloMs * (this.opts.sloScale ?? 1);
  }

  /**
   * Submits one request, whole in hand since `arrivedAt` (performance.now() ms; default now), due within
   * `deadlineMs` of then (default: the function's SLO; an app's stage call: what the app's budget leaves it).
   */
  submit(
    payload: Payload,
    rows: number,
    signal?: AbortSignal,
    arrivedAt?: number,
    deadlineMs = this.deadlineMs,
  ): Promise<Answer> {
    this.opts.onArrival?.(this.name);
    return this.dispatcher.submit(payload, rows, deadlineMs, signal, arrivedAt);
  }

  /**
   * Stops this version. With `drain`, queued and in-flight requests are served first (bounded by
   * `drainTimeoutMs`); then admission closes and the workers exit.
   */
  async stop(drain: boolean, drainTimeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    if (drain) {
      await Promise.race([this.dispatcher.drain(), new Promise((r) => setTimeout(r, drainTimeoutMs))]);
    }
    this.dispatcher.close(`function ${this.name} v${this.version} was stopped`);
    const slots = this.dispatcher.getSlots();
    this.dispatcher.setSlots([]);
    // Its gpu-let processes stop with their last function; the fleet releases their shares.
    await Promise.all(slots.map((s) => s.worker.stop()));
  }

  /** The gpu-lets serving this version now (`POST`/`GET /admin/functions`). */
  describe() {
    return this.dispatcher.getSlots().map((s) => ({
      id: s.worker.id,
      pid: s.worker.pid,
      cores: s.worker.cores ?? [],
      batch: s.batch,
      latencyMs: s.latency.toJSON(),
    }));
  }
}

/** Where a gpu-let process runs: its cores (cpu), or its GPU share's environment (cuda). */
export interface GpuletPlace {
  cores: number[];
  /** The worker's environment for its GPU and MPS share; the models then run on CUDA. */
  cudaEnv?: Record<string, string>;
}

let gpuletSeq = 0;

/**
 * Starts and warms one gpu-let process serving `deps` (several: a time-shared gpu-let, taking turns); one
 * executor per deployment, in order. With `cudaEnv`, on the GPU share it gives (one CPU core for its host side).
 */
export async function startGpulet(deps: Deployment[], place: GpuletPlace): Promise<GpuletHandle> {
  const { runtimeDir, startTimeoutMs } = deps[0].processOptions;
  const names = deps.map((d) => `${d.name}-v${d.version}`).join("+");
  return await GpuletProcess.start({
    id: `${names}-${gpuletSeq++}`,
    functions: deps.map((d) => d.functionConfig()),
    threads: Math.max(1, place.cores.length),
    cuda: place.cudaEnv !== undefined,
    cores: place.cores,
    runtimeDir,
    startTimeoutMs,
    env: place.cudaEnv,
  });
}
