/**
 * The controller's handle on one gpu-let worker process: start it (spawn, accept its socket, wait until it
 * is warm), send it batches, learn when it dies, stop it.
 */
import type { BatchResult, Executor } from "./executor.ts";
import { FrameReader, FrameWriter } from "./framing.ts";
import type { ModelInfo, ReadyMessage, ResultMessage, RunItem, WorkerConfig, WorkerToController } from "./protocol.ts";
import { findTaskset, workerCommand, workerEnv } from "./worker_command.ts";

/** The worker failed to start: its function or model could not be loaded or warmed. */
export class WorkerStartError extends Error {
  constructor(readonly stage: string, message: string) {
    super(message);
  }
}

/** The worker died or was stopped while a batch was in flight. */
export class WorkerLostError extends Error {}

export interface WorkerSpec {
  /** Unique id, used in the socket name and logs. */
  id: string;
  functionDir: string;
  config: Omit<WorkerConfig, "socket">;
  cores?: number[];
  runtimeDir: string;
  startTimeoutMs?: number;
  /** More environment for the process (e.g. its GPU and MPS share); the worker itself cannot read it. */
  env?: Record<string, string>;
}

const TASKSET = findTaskset();

/** A running, warmed worker process. */
export class GpuletWorker implements Executor {
  readonly id: string;
  readonly cores?: number[];
  pid = 0;
  model!: ModelInfo;
  warmLatencyMs: Record<string, number> = {};
  /** Batches sent and not yet answered. */
  inflight = 0;
  /** Resolves when the process has exited (expected or not). */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Set once `stop()` or `kill()` was called: an exit after that is not a crash. */
  stopping = false;
  private child: Deno.ChildProcess;
  private conn?: Deno.Conn;
  private writer?: FrameWriter;
  private nextBatchId = 1;
  private pending = new Map<
    number,
    { resolve: (r: BatchResult) => void; reject: (e: Error) => void }
  >();
  private stderrTail = "";

  private constructor(spec: WorkerSpec, child: Deno.ChildProcess) {
    this.id = spec.id;
    this.cores = spec.cores;
    this.child = child;
    this.exited = child.status;
    this.collectStderr(child.stderr);
  }

  /** Spawns a worker and waits until it reports ready (model loaded, warmed) or fails. */
  static async start(spec: WorkerSpec): Promise<GpuletWorker> {
    const socket = `${spec.runtimeDir}/${spec.id}.sock`;
    await Deno.remove(socket).catch(() => {});
    const listener = Deno.listen({ transport: "unix", path: socket });
    const config: WorkerConfig = { ...spec.config, socket };
    const { program, args } = workerCommand({
      config,
      functionDir: spec.functionDir,
      cores: spec.cores,
      tasksetPath: TASKSET,
    });
    const child = new Deno.Command(program, {
      args,
      env: { ...workerEnv(), ...spec.env },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const w = new GpuletWorker(spec, child);
    const timeoutMs = spec.startTimeoutMs ?? 120_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const conn = await Promise.race([
        listener.accept(),
        w.exited.then((s) => {
          throw new WorkerStartError(
            "spawn",
            `worker exited with code ${s.code} before connecting: ${w.stderrTail.trim()}`,
          );
        }),
        new Promise<never>((_, rej) => {
          timer = setTimeout(
            () => rej(new WorkerStartError("spawn", `worker did not connect in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      w.conn = conn;
      w.writer = new FrameWriter(conn);
      const reader = new FrameReader(conn);
      const first = await Promise.race([
        reader.next<WorkerToController>(),
        new Promise<never>((_, rej) => {
          clearTimeout(timer);
          timer = setTimeout(
            () => rej(new WorkerStartError("warmup", `worker not ready in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      if (!first) {
        // It died while importing the function, loading or warming up: say how.
        const status = await Promise.race([w.exited, new Promise<null>((r) => setTimeout(() => r(null), 1000))]);
        const how = status
          ? (status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`)
          : "";
        throw new WorkerStartError(
          "load",
          `worker ${how || "closed its socket"} while loading the function${
            w.stderrTail.trim() ? `: ${w.stderrTail.trim()}` : ""
          }`,
        );
      }
      if (first.header.type === "fatal") throw new WorkerStartError(first.header.stage, first.header.error);
      if (first.header.type !== "ready") throw new WorkerStartError("load", "unexpected first message from worker");
      const ready = first.header as ReadyMessage;
      w.pid = ready.pid;
      w.model = ready.model;
      w.warmLatencyMs = ready.warmLatencyMs;
      w.readLoop(reader);
      return w;
    } catch (e) {
      w.kill();
      await w.exited;
      throw e;
    } finally {
      clearTimeout(timer);
      listener.close();
      await Deno.remove(socket).catch(() => {});
    }
  }

  private async collectStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) this.stderrTail = (this.stderrTail + dec.decode(chunk)).slice(-2000);
    } catch { /* process gone */ }
  }

  private async readLoop(reader: FrameReader): Promise<void> {
    let error: Error = new WorkerLostError(`worker ${this.id} closed its connection`);
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
        this.inflight--;
        // The body stays the caller's until it releases it, however far this loop reads on meanwhile.
        p.resolve({ ...frame.header, body: frame.body, release: frame.release });
      }
    } catch (e) {
      error = new WorkerLostError(`worker ${this.id}: ${e instanceof Error ? e.message : e}`);
    }
    const status = await Promise.race([this.exited, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
    if (status && !this.stopping) {
      error = new WorkerLostError(
        `worker ${this.id} died (${status.signal ?? `exit code ${status.code}`})${
          this.stderrTail ? `: ${this.stderrTail.trim().split("\n").pop()}` : ""
        }`,
      );
    }
    this.failPending(error);
    try {
      this.conn?.close();
    } catch { /* already closed */ }
  }

  private failPending(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.inflight = 0;
  }

  /**
   * Runs one batch. `body` holds the tensor bytes that `items` reference. The result's `body` is a view of
   * the connection's read buffer, lent to the caller until it calls the result's `release()`.
   */
  run(items: RunItem[], body: Uint8Array[]): Promise<BatchResult> {
    if (!this.writer) return Promise.reject(new WorkerLostError("worker not started"));
    const batchId = this.nextBatchId++;
    this.inflight++;
    return new Promise((resolve, reject) => {
      this.pending.set(batchId, { resolve, reject });
      this.writer!.write({ type: "run", batchId, items }, body).catch((e) => {
        if (this.pending.delete(batchId)) {
          this.inflight--;
          reject(new WorkerLostError(`worker ${this.id}: send failed: ${e instanceof Error ? e.message : e}`));
        }
      });
    });
  }

  /** Asks the worker to exit after its current batch; kills it if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    await this.writer?.write({ type: "stop" }).catch(() => {});
    const status = await Promise.race([this.exited, new Promise<null>((r) => setTimeout(() => r(null), graceMs))]);
    if (!status) this.kill();
    await this.exited;
  }

  /** Kills the process at once (SIGKILL). Unless `stop()` was called, its exit counts as a crash. */
  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
}
