/**
 * One live version of a function: its gpu-let worker(s), its admission dispatcher, and the respawn of a
 * worker that dies.
 */
import { Dispatcher, type Slot } from "../admission/dispatcher.ts";
import { LatencyEstimate } from "../admission/latency.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Answer, Payload } from "../admission/request.ts";
import { isBundledModel } from "../functions/manifest.ts";
import type { FunctionRecord } from "../functions/registry.ts";
import { chooseBatch, pickCores, warmBatches } from "../planner/static_layout.ts";
import type { CpuDevice } from "../runtime/cpu_device.ts";
import type { FunctionConfig, ModelInfo } from "../runtime/protocol.ts";
import type { Executor, GpuletHandle } from "../runtime/executor.ts";
import { GpuletProcess } from "../runtime/worker.ts";

/** A batch unanswered this long means a hung gpu-let: at least this (ms), or this many deadlines. */
const HANG_MIN_MS = 10_000;
const HANG_DEADLINES = 5;
/** Respawning a worker that died: first wait (ms), doubling up to the cap. */
const RESPAWN_FIRST_MS = 500;
const RESPAWN_MAX_MS = 30_000;
/** Default bound on draining a stopping version (ms). */
const DRAIN_TIMEOUT_MS = 30_000;

export interface DeploymentOptions {
  modelsDir: string;
  runtimeDir: string;
  device: CpuDevice;
  metrics: Metrics;
  coresPerGpulet: number;
  maxQueueRows: number;
  /** Batches in flight per gpu-let. */
  depth: number;
  log: (line: string) => void;
  /** SLOs are multiplied by this (simulated devices with dilated time). Default 1. */
  sloScale?: number;
  /** Called on every request submitted, admitted or not (the autoscaler's demand). */
  onArrival?: (name: string) => void;
  /** Static mode: gpu-lets started per function (default 1). */
  gpuletsPerFunction?: number;
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
  /** Why a planned gpu-let of this version could not start (autoscaled mode). */
  startError?: Error;
  private stopped = false;
  private workerSeq = 0;
  /** True when the fleet places this version's gpu-lets (autoscaled mode) rather than {@link start}. */
  private managed = false;

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

  private slotFor(worker: Executor): Slot {
    const m = this.record.manifest;
    return {
      worker,
      batch: chooseBatch(worker.warmLatencyMs, m.sloMs, m.maxBatch),
      maxDelayMs: 0,
      depth: this.opts.depth,
      latency: new LatencyEstimate(worker.warmLatencyMs),
    };
  }

  /** Static mode: one gpu-let process of this version alone, pinned to `cores`. */
  private async startProcess(cores: number[]): Promise<Executor> {
    const gpulet = await startGpulet([this], { cores });
    return gpulet.executors[0];
  }

  /**
   * Static mode: starts and warms the gpu-lets (`gpuletsPerFunction`, each on the least-loaded cores);
   * throws (WorkerStartError) if the function or model cannot be served, leaving nothing running.
   */
  async start(): Promise<void> {
    const started: { worker: Executor; cores: number[] }[] = [];
    try {
      for (let i = 0; i < (this.opts.gpuletsPerFunction ?? 1); i++) {
        const cores = pickCores(this.opts.device.load(), this.opts.coresPerGpulet);
        this.opts.device.take(cores);
        try {
          started.push({ worker: await this.startProcess(cores), cores });
        } catch (e) {
          this.opts.device.release(cores);
          throw e;
        }
      }
    } catch (e) {
      await Promise.all(started.map(async ({ worker, cores }) => {
        await worker.stop();
        this.opts.device.release(cores);
      }));
      throw e;
    }
    this.model = started[0].worker.model;
    const slots = started.map(({ worker, cores }) => {
      const slot = this.slotFor(worker);
      this.watch(slot, cores);
      this.opts.log(
        `${this.name} v${this.version}: gpu-let on cores [${cores}] pid ${worker.pid}, batch ${slot.batch}, ` +
          `warm latency ${
            JSON.stringify(slot.latency.toJSON(), (_, v) => (typeof v === "number" ? +v.toFixed(2) : v))
          } ms`,
      );
      return slot;
    });
    this.dispatcher.setSlots(slots);
  }

  /** Respawns a worker that exits while this version is live; its in-flight batches were already failed. */
  private watch(slot: Slot, cores: number[]): void {
    slot.worker.exited.then(async (status) => {
      if (this.stopped || slot.worker.stopping) return;
      this.opts.log(
        `${this.name} v${this.version}: worker ${slot.worker.pid} died (${status.signal ?? status.code}), respawning`,
      );
      this.opts.metrics.workerRestarts.inc({ function: this.name });
      this.dispatcher.setSlots(this.dispatcher.getSlots().filter((s) => s !== slot));
      for (let attempt = 0; !this.stopped; attempt++) {
        try {
          const worker = await this.startProcess(cores);
          if (this.stopped) {
            await worker.stop();
            return;
          }
          const fresh = this.slotFor(worker);
          this.watch(fresh, cores);
          this.dispatcher.setSlots([...this.dispatcher.getSlots(), fresh]);
          this.opts.log(`${this.name} v${this.version}: respawned as pid ${worker.pid}`);
          return;
        } catch (e) {
          this.opts.log(`${this.name} v${this.version}: respawn failed: ${e instanceof Error ? e.message : e}`);
          await new Promise((r) => setTimeout(r, Math.min(RESPAWN_MAX_MS, RESPAWN_FIRST_MS * 2 ** attempt)));
        }
      }
    });
  }

  /** Takes an executor the fleet started for this version (autoscaled mode): it learns the model from it. */
  adopt(executor: Executor): void {
    this.managed = true;
    this.model ??= executor.model;
  }

  /** The deadline of a request (ms): the SLO, dilated on simulated devices. */
  get deadlineMs(): number {
    return this.record.manifest.sloMs * (this.opts.sloScale ?? 1);
  }

  /** Submits one request, whole in hand since `arrivedAt` (performance.now() ms; default now). */
  submit(payload: Payload, rows: number, signal?: AbortSignal, arrivedAt?: number): Promise<Answer> {
    this.opts.onArrival?.(this.name);
    return this.dispatcher.submit(payload, rows, this.deadlineMs, signal, arrivedAt);
  }

  /**
   * Stops this version. With `drain`, queued and in-flight requests are served first (bounded by
   * `drainTimeoutMs`); then admission closes and the workers exit.
   */
  async stop(drain: boolean, drainTimeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    if (drain) {
      await Promise.race([this.dispatcher.drain(), new Promise((r) => setTimeout(r, drainTimeoutMs))]);
    }
    this.stopped = true;
    this.dispatcher.close(`function ${this.name} v${this.version} was stopped`);
    const slots = this.dispatcher.getSlots();
    this.dispatcher.setSlots([]);
    await Promise.all(slots.map(async (s) => {
      await s.worker.stop();
      // In autoscaled mode the fleet's lease owns the cores.
      if (s.worker.cores && !this.managed) this.opts.device.release(s.worker.cores);
    }));
  }

  /** The live layout of this version for `GET /admin/plan`. */
  describe() {
    return this.dispatcher.getSlots().map((s) => ({
      id: s.worker.id,
      pid: s.worker.pid,
      cores: s.worker.cores ?? [],
      batch: s.batch,
      maxDelayMs: s.maxDelayMs,
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
