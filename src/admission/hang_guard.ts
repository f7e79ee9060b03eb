/**
 * A bound on how long a gpu-let may take to answer a batch: past it the batch fails as hung and the gpu-let
 * is killed, so its requests can be retried elsewhere instead of waiting forever.
 */
import type { BatchResult, Executor } from "../runtime/executor.ts";
import type { RunItem } from "../runtime/protocol.ts";

/** A gpu-let gave no answer within the hang bound (it is killed). */
export class HungWorkerError extends Error {}

/** Runs a batch on `worker`, failing it with {@link HungWorkerError} (and killing it) after `boundMs`. */
export function runBounded(
  worker: Executor,
  items: RunItem[],
  body: Uint8Array[],
  boundMs: number | undefined,
): Promise<BatchResult> {
  const run = worker.run(items, body);
  if (boundMs === undefined) return run;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // It fails once the process is gone (the batch was already handled); an answer that still comes
      // gives its bytes back.
      run.then((late) => late.release?.(), () => {});
      // Settled before the kill, so the batch fails as hung even where killing fails it at once.
      reject(new HungWorkerError(`gpu-let ${worker.id} gave no answer in ${boundMs} ms and was killed`));
      worker.kill();
    }, boundMs);
  });
  return Promise.race([run, hung]).finally(() => clearTimeout(timer));
}
