/**
 * The gpu-let process: one per gpu-let, as in Gpu-let (one MPS client, one pinned core set). It serves the
 * functions the plan put on its gpu-let, taking turns batch by batch: the controller sends each function's
 * batches (at the plan's batch size) over one Unix socket, and the process runs them one at a time,
 * round-robin over its functions.
 *
 * Started by the controller with the fewest Deno permissions that work: read of its functions' folders, their
 * model files and its socket; write and net only to that socket; ffi only to the onnxruntime binding. No env,
 * no run, no other net or write. A function alone on its gpu-let runs in this isolate, with exactly those
 * permissions. In a time-shared gpu-let each function runs in a Web Worker with only its own folder and
 * model (`function_worker.ts`), so one function cannot read another's files.
 */
import { type Frame, FrameReader, FrameWriter } from "./framing.ts";
import { describe, LoadError, loadFunction } from "./function_runtime.ts";
import type {
  FatalMessage,
  FromIsolate,
  FunctionConfig,
  FunctionReady,
  ReadyMessage,
  ResultMessage,
  RunMessage,
  ToIsolate,
  WorkerConfig,
} from "./protocol.ts";

/** Exit code of a process whose function failed to load (the controller reads the `fatal` message). */
const EXIT_FATAL = 3;

/** How the process reaches one of its functions. */
interface FunctionHost {
  /** Loads and warms it; throws a {@link LoadError}. */
  load(): Promise<FunctionReady>;
  /** Runs one batch; `body` is the frame's, valid until the answer is written. */
  run(run: RunMessage, body: Uint8Array): Promise<{ header: ResultMessage; parts: Uint8Array[] }>;
}

/**
 * A function alone on its gpu-let runs in the process itself: the process then has exactly its permissions,
 * and a batch crosses no isolate (a Web Worker's two message hops cost ~0.2 ms a batch, measured here).
 */
class InlineFunction implements FunctionHost {
  private loaded?: Awaited<ReturnType<typeof loadFunction>>;

  constructor(private readonly config: FunctionConfig, private readonly threads: number, private cuda: boolean) {}

  async load(): Promise<FunctionReady> {
    this.loaded = await loadFunction(this.config, this.threads, this.cuda);
    return this.loaded.ready;
  }

  run(run: RunMessage, body: Uint8Array) {
    return this.loaded!.run(run, body);
  }
}

/** A function of a time-shared gpu-let: in a Web Worker of its own, with that function's permissions only. */
class IsolatedFunction implements FunctionHost {
  private readonly worker: Worker;
  private waiting?: (msg: FromIsolate) => void;

  constructor(
    private readonly config: FunctionConfig,
    private readonly threads: number,
    private readonly cuda: boolean,
    bindingPath: string,
    onExit: (code: number) => void,
  ) {
    this.worker = new Worker(new URL("./function_worker.ts", import.meta.url), {
      type: "module",
      name: config.name,
      deno: {
        permissions: {
          read: [config.functionDir, config.modelFile],
          ffi: [bindingPath],
          write: false,
          net: false,
          env: false,
          run: false,
          sys: false,
          import: false,
        },
      },
    } as WorkerOptions);
    this.worker.onmessage = (e: MessageEvent<FromIsolate>) => {
      if (e.data.type === "exit") return onExit(e.data.code);
      const w = this.waiting;
      this.waiting = undefined;
      w?.(e.data);
    };
    // An uncaught error in function code ends its isolate: the gpu-let can no longer serve it.
    this.worker.onerror = (e) => {
      e.preventDefault();
      console.error(`gpulet worker: function ${config.name}: ${e.message}`);
      onExit(1);
    };
  }

  /** Sends a message and waits for the one answer it gets. */
  private ask(msg: ToIsolate, transfer: Transferable[] = []): Promise<FromIsolate> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(msg, transfer);
    });
  }

  async load(): Promise<FunctionReady> {
    const a = await this.ask({ type: "init", config: this.config, threads: this.threads, cuda: this.cuda });
    if (a.type === "ready") return a.ready;
    throw a.type === "fatal" ? new LoadError(a.stage, a.error) : new LoadError("load", `unexpected ${a.type}`);
  }

  async run(run: RunMessage, body: Uint8Array) {
    // The isolate gets its own copy, transferred (not cloned again).
    const copy = body.slice();
    const a = await this.ask({ type: "run", header: run, body: copy }, [copy.buffer]);
    if (a.type !== "result") throw new Error(`function ${this.config.name} answered ${a.type} to a batch`);
    // Function code shares the isolate that answers: it must not answer for another batch (its neighbour's)
    // nor leave a request of its own unanswered. One answer per item of this batch, or the gpu-let ends.
    const asked = new Set(run.items.map((i) => i.id));
    const ids = a.header.items.map((i) => i.id);
    if (ids.length !== asked.size || new Set(ids).size !== ids.length || !ids.every((id) => asked.has(id))) {
      throw new Error(`function ${this.config.name} answered other requests than its batch's`);
    }
    return { header: { ...a.header, type: "result" as const, batchId: run.batchId }, parts: [a.body] };
  }
}

/**
 * Runs the batches the controller sends, one at a time, the functions taking turns round-robin (each
 * function's batches in arrival order): the turn order the planner's tail model and the request-level
 * simulator assume. Ends once the controller said `stop` (or went away) and every batch sent is answered.
 */
async function serveInTurns(
  reader: FrameReader,
  hosts: FunctionHost[],
  answer: (header: ResultMessage, parts: Uint8Array[]) => Promise<void>,
): Promise<void> {
  const queues: Frame<RunMessage>[][] = hosts.map(() => []);
  let ended = false;
  let wake: (() => void) | undefined;
  const reading: Promise<void> = (async () => {
    for (;;) {
      const frame = await reader.next<RunMessage | { type: "stop" }>();
      if (!frame || frame.header.type === "stop") break;
      const run = frame.header;
      if (!queues[run.fn]) throw new Error(`no function ${run.fn} on this gpu-let`);
      queues[run.fn].push(frame as Frame<RunMessage>);
      wake?.();
    }
  })().finally(() => {
    ended = true;
    wake?.();
  });
  // A read error ends the serving once the batches already read are answered (re-thrown below).
  reading.catch(() => {});
  let turn = 0;
  for (;;) {
    const k = queues.findIndex((_, i) => queues[(turn + i) % queues.length].length > 0);
    if (k < 0) {
      if (ended) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
      continue;
    }
    const fn = (turn + k) % queues.length;
    turn = fn + 1;
    const frame = queues[fn].shift()!;
    const { header, parts } = await hosts[fn].run(frame.header, frame.body);
    // Inputs are views of the frame's body, and outputs may be too (an identity model): released once written.
    await answer(header, parts);
    frame.release();
  }
  await reading;
}

async function main(): Promise<void> {
  const config = JSON.parse(Deno.args[0]) as WorkerConfig;
  const conn = await Deno.connect({ transport: "unix", path: config.socket });
  const writer = new FrameWriter(conn);
  const reader = new FrameReader(conn);
  const exitWith = (code: number) => {
    conn.close();
    Deno.exit(code);
  };
  const cuda = config.cuda ?? false;
  const hosts: FunctionHost[] = config.functions.length === 1
    ? [new InlineFunction(config.functions[0], config.threads, cuda)]
    : config.functions.map((f) => new IsolatedFunction(f, config.threads, cuda, config.bindingPath, exitWith));
  // Loaded side by side; the gpu-let is ready when all of them are.
  const loads = await Promise.allSettled(hosts.map((h) => h.load()));
  const failed = loads.findIndex((l) => l.status === "rejected");
  if (failed >= 0) {
    const e = (loads[failed] as PromiseRejectedResult).reason;
    const fatal: FatalMessage = {
      type: "fatal",
      stage: e instanceof LoadError ? e.stage : "load",
      error: config.functions.length > 1 ? `${config.functions[failed].name}: ${describe(e)}` : describe(e),
    };
    await writer.write(fatal).catch(() => {});
    exitWith(EXIT_FATAL);
  }
  const ready: ReadyMessage = {
    type: "ready",
    pid: Deno.pid,
    functions: loads.map((l) => (l as PromiseFulfilledResult<FunctionReady>).value),
  };
  await writer.write(ready);
  await serveInTurns(reader, hosts, (header, parts) => writer.write(header, parts));
  exitWith(0);
}

if (import.meta.main) {
  // The controller going away closes the socket; any unexpected error ends the process (it is restarted).
  main().catch((e) => {
    console.error(`gpulet worker: ${describe(e)}`);
    Deno.exit(1);
  });
}
