/**
 * The Web Worker entry of one function in a time-shared gpu-let: the function runs here with its own least
 * permissions (read of its folder and model file, ffi only to the onnxruntime binding; no net, write, env,
 * run or sys), so functions sharing a gpu-let cannot read each other's files. It loads the function
 * (`function_runtime.ts`) when the process says `init`, then runs the batches the process hands it.
 */
/// <reference lib="deno.worker" />
import { describe, type LoadedFunction, LoadError, loadFunction } from "./function_runtime.ts";
import { joinBytes } from "./bytes.ts";
import type { FromIsolate, ToIsolate } from "./protocol.ts";

function post(msg: FromIsolate, transfer: Transferable[] = []): void {
  self.postMessage(msg, transfer);
}

// Function code that calls Deno.exit ends this isolate without an event the process could see: say so first.
const exit = Deno.exit;
Object.defineProperty(Deno, "exit", {
  value: (code = 0) => {
    post({ type: "exit", code });
    exit(code);
  },
});

let loaded: Promise<LoadedFunction | undefined> | undefined;

// Batches come one at a time (the process waits for each result), so no queue is needed here.
self.onmessage = async (e: MessageEvent<ToIsolate>) => {
  const msg = e.data;
  if (msg.type === "init") {
    loaded = loadFunction(msg.config, msg.threads, msg.cuda).then(
      (fn) => {
        post({ type: "ready", ready: fn.ready });
        return fn;
      },
      (err) => {
        const stage = err instanceof LoadError ? err.stage : "load";
        post({ type: "fatal", stage, error: describe(err) });
        return undefined;
      },
    );
    return;
  }
  const fn = await loaded;
  if (!fn) return;
  const { header, parts } = await fn.run(msg.header, msg.body);
  // Its own buffer, to transfer: the parts may be views of the model's reusable slabs.
  const body = joinBytes(parts);
  post({ type: "result", header, body }, [body.buffer]);
};
