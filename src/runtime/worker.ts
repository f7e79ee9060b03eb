/**
 * The controller's handle on one gpu-let process: start it (spawn, accept its socket, wait until every
 * function on it is warm), send it each function's batches, learn when it dies, stop it.
 */
import type { BatchResult, Executor } from "./executor.ts";
import type { FrameReader } from "./framing.ts";
import { SocketProcess, WorkerLostError } from "./socket_process.ts";
import type {
  FunctionConfig,
  FunctionReady,
  ModelInfo,
  ReadyMessage,
  ResultMessage,
  RunItem,
  RunMessage,
  WorkerConfig,
} from "./protocol.ts";
import { findTaskset, ortBindingPath, workerCommand, workerEnv } from "./worker_command.ts";

export interface GpuletSpec {
  /** Unique id, for logs. */
  id: string;
  /** The functions it serves, taking turns (one is the common case). */
  functions: FunctionConfig[];
  /** onnxruntime threads per session: the gpu-let's cores. */
  threads: number;
  /** Run its models on the GPU its environment gives it. */
  cuda?: boolean;
  cores?: number[];
  runtimeDir: string;
  startTimeoutMs?: number;
  /** More environment for the process (e.g. its GPU and MPS share); the worker itself cannot read it. */
  env?: Record<string, string>;
}

const TASKSET = findTaskset();
/** Default bound on loading and warming a gpu-let (ms). */
const START_TIMEOUT_MS = 120_000;

/**
 * A running, warmed gpu-let process: one process (one MPS client, one core set) serving one or more
 * functions, one {@link FunctionExecutor} each.
 */
export class GpuletProcess extends SocketProcess {
  readonly id: string;
  readonly cores?: number[];
  /** One per function, in the order of the spec. */
  readonly executors: FunctionExecutor[] = [];
  private nextBatchId = 1;
  private pending = new Map<
    number,
    { resolve: (r: BatchResult) => void; reject: (e: Error) => void }
  >();

  private constructor(spec: GpuletSpec, child: Deno.ChildProcess) {
    super(child);
    this.id = spec.id;
    this.cores = spec.cores;
  }

  /** Spawns a gpu-let process and waits until it reports ready (every model loaded, warmed) or fails. */
  static start(spec: GpuletSpec): Promise<GpuletProcess> {
    return SocketProcess.launch<GpuletProcess, ReadyMessage>({
      runtimeDir: spec.runtimeDir,
      prefix: "g",
      spawn: (socket) => {
        const config: WorkerConfig = {
          socket,
          threads: spec.threads,
          bindingPath: ortBindingPath(),
          cuda: spec.cuda,
          functions: spec.functions,
        };
        const { program, args } = workerCommand({ config, cores: spec.cores, tasksetPath: TASKSET });
        return new GpuletProcess(spec, SocketProcess.spawnChild(program, args, { ...workerEnv(), ...spec.env }));
      },
      timeoutMs: spec.startTimeoutMs ?? START_TIMEOUT_MS,
      label: "worker",
      loading: "loading the function",
      readyStage: "warmup",
      loadStage: "load",
    }, (w, ready, reader) => {
      w.pid = ready.pid;
      ready.functions.forEach((f, i) => {
        const id = spec.functions.length === 1 ? spec.id : `${spec.id}/${spec.functions[i].name}`;
        w.executors.push(new FunctionExecutor(w, i, id, f));
      });
      w.readLoop(reader);
    });
  }

  private async readLoop(reader: FrameReader): Promise<void> {
    let why = `worker ${this.id} closed its connection`;
    try {
      for (;;) {
        const frame = await reader.next<ResultMessage>();
        if (!frame) break;
        const p = this.pending.get(frame.header.batchId);
        if (!p) {
          frame.release(); // an answer nobody waits for (its batch was failed already)
          continue;
        }
        this.pending.delete(frame.header.batchId);
        // The body stays the caller's until it releases it, however far this loop reads on meanwhile.
        p.resolve({ ...frame.header, body: frame.body, release: frame.release });
      }
    } catch (e) {
      why = `worker ${this.id}: ${e instanceof Error ? e.message : e}`;
    }
    this.failPending(new WorkerLostError(await this.connectionEnded(why, (how) => `worker ${this.id} died (${how})`)));
  }

  private failPending(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  /**
   * Runs one batch of function `fn`. `body` holds the tensor bytes that `items` reference. The result's
   * `body` is a view of the connection's read buffer, lent to the caller until it calls the result's
   * `release()`.
   */
  run(fn: number, items: RunItem[], body: Uint8Array[]): Promise<BatchResult> {
    if (!this.writer) return Promise.reject(new WorkerLostError("worker not started"));
    const batchId = this.nextBatchId++;
    return new Promise((resolve, reject) => {
      this.pending.set(batchId, { resolve, reject });
      const run: RunMessage = { type: "run", batchId, fn, items };
      this.writer!.write(run, body).catch((e) => {
        if (this.pending.delete(batchId)) {
          reject(new WorkerLostError(`worker ${this.id}: send failed: ${e instanceof Error ? e.message : e}`));
        }
      });
    });
  }
}

/** One function's handle on its gpu-let process: what admission sends that function's batches to. */
export class FunctionExecutor implements Executor {
  readonly model: ModelInfo;
  readonly warmLatencyMs: Record<string, number>;
  /** Batches sent and not yet answered. */
  inflight = 0;
  private stopped = false;
  private readonly unanswered = new Set<Promise<unknown>>();

  constructor(
    readonly process: GpuletProcess,
    private readonly fn: number,
    readonly id: string,
    ready: FunctionReady,
  ) {
    this.model = ready.model;
    this.warmLatencyMs = ready.warmLatencyMs;
  }

  get pid(): number {
    return this.process.pid;
  }

  get cores(): number[] | undefined {
    return this.process.cores;
  }

  get exited(): Promise<Deno.CommandStatus> {
    return this.process.exited;
  }

  /** True once this function was stopped here, or its process is stopping. */
  get stopping(): boolean {
    return this.stopped || this.process.stopping;
  }

  run(items: RunItem[], body: Uint8Array[]): Promise<BatchResult> {
    this.inflight++;
    const p = this.process.run(this.fn, items, body).finally(() => this.inflight--);
    const settled = p.catch(() => {});
    this.unanswered.add(settled);
    settled.then(() => this.unanswered.delete(settled));
    return p;
  }

  /**
   * Stops serving this function here after its batches in flight; the process stops with the last of its
   * functions.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.unanswered);
    if (this.process.executors.every((e) => e.stopping)) await this.process.stop();
  }

  /** Kills the whole process (one function hung or broken takes its gpu-let down: it is restarted). */
  kill(): void {
    this.process.kill();
  }
}
