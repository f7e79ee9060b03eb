/**
 * What admission needs from a gpu-let serving one function: send it a batch, know how busy it is, learn that
 * it died. A function on a gpu-let process (`FunctionExecutor`, `worker.ts`) is one; a simulated gpu-let (`sim`
 * devices) is another.
 */
import type { ModelInfo, ResultMessage, RunItem } from "./protocol.ts";

/**
 * A batch result. `body` belongs to the caller, unchanged, until it calls `release()` (when given), which
 * lets the executor reuse the bytes; the caller must copy out what it keeps beyond that.
 */
export type BatchResult = ResultMessage & { body: Uint8Array; release?: () => void };

/** One function's handle on a running, warm gpu-let. */
export interface Executor {
  /** Unique id, for logs. */
  readonly id: string;
  /** OS process id (0 for a simulated gpu-let). */
  readonly pid: number;
  /** Cores the process is pinned to, when it is. */
  readonly cores?: number[];
  readonly model: ModelInfo;
  /** Measured batch latency (ms) at warm-up, per batch size. */
  readonly warmLatencyMs: Record<string, number>;
  /** Batches sent and not yet answered. */
  readonly inflight: number;
  /** True once it was asked to stop: an exit after that is not a crash. */
  readonly stopping: boolean;
  /** Resolves when it has ended, expected or not. */
  readonly exited: Promise<{ code: number; signal: string | null }>;
  /** Runs one batch; `body` holds the tensor bytes `items` reference. */
  run(items: RunItem[], body: Uint8Array[]): Promise<BatchResult>;
  /** Finishes the current batches, then ends. */
  stop(): Promise<void>;
  /** Ends at once; batches in flight fail. */
  kill(): void;
}

/** A started gpu-let: one executor per function it serves, in the order they were asked for. */
export interface GpuletHandle {
  readonly id: string;
  /** OS process id (0 when it is not a process). */
  readonly pid: number;
  readonly executors: readonly Executor[];
  /** Resolves when the gpu-let has ended, expected or not. */
  readonly exited: Promise<{ code: number; signal: string | null }>;
  /** Finishes the batches in flight, then ends every function on it. */
  stop(): Promise<void>;
}

/**
 * A gpu-let made of separate executors (simulated gpu-lets, tests): it ends when one of them ends without
 * being stopped (a crash), or when all of them have ended.
 */
export function gpuletOf(id: string, executors: Executor[]): GpuletHandle {
  const exited = new Promise<{ code: number; signal: string | null }>((resolve) => {
    let left = executors.length;
    for (const e of executors) {
      e.exited.then((status) => {
        if (--left === 0 || !e.stopping) resolve(status);
      });
    }
  });
  return {
    id,
    pid: executors[0]?.pid ?? 0,
    executors,
    exited,
    stop: async () => {
      await Promise.all(executors.map((e) => e.stop()));
    },
  };
}
