/**
 * The gpu-let process: one per gpu-let, as in Gpu-let (one MPS client, one pinned core set). It serves the
 * functions the plan put on its gpu-let, taking turns batch by batch: the controller sends each function's
 * batches (at the plan's batch size) over one Unix socket, and the process runs them one at a time,
 * round-robin over its functions, each in the isolate of its function (`function_worker.ts`).
 *
 * Started by the controller with the fewest Deno permissions that work: read of its functions' folders, their
 * model files and its socket; write and net only to that socket; ffi only to the onnxruntime binding. No env,
 * no run, no other net or write. Function code never runs in this isolate: each function gets a Web Worker
 * with only its own folder and model, so one function cannot read another's files.
 */
import { FrameReader, FrameWriter } from "./framing.ts";
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

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One function's isolate, and the answer it owes. */
class FunctionIsolate {
  private readonly worker: Worker;
  private waiting?: (msg: FromIsolate) => void;

  constructor(config: FunctionConfig, bindingPath: string, onExit: (code: number) => void) {
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
  ask(msg: ToIsolate, transfer: Transferable[] = []): Promise<FromIsolate> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(msg, transfer);
    });
  }
}

/** A batch received and not yet run. */
interface Job {
  run: RunMessage;
  body: Uint8Array<ArrayBuffer>;
}

/**
 * Runs the batches the controller sends, one at a time, the functions taking turns round-robin (each
 * function's batches in arrival order): the turn order the planner's tail model and the request-level
 * simulator assume. Ends once the controller said `stop` (or went away) and every batch sent is answered.
 */
async function serveInTurns(
  reader: FrameReader,
  isolates: FunctionIsolate[],
  answer: (header: ResultMessage, body: Uint8Array) => Promise<void>,
): Promise<void> {
  const queues: Job[][] = isolates.map(() => []);
  let ended = false;
  let wake: (() => void) | undefined;
  const reading = (async () => {
    for (;;) {
      const frame = await reader.next<RunMessage | { type: "stop" }>();
      if (!frame || frame.header.type === "stop") break;
      const run = frame.header;
      if (!queues[run.fn]) throw new Error(`no function ${run.fn} on this gpu-let`);
      // The isolate gets its own copy (transferred, not cloned again); the frame's bytes go back at once.
      queues[run.fn].push({ run, body: frame.body.slice() });
      frame.release();
      wake?.();
    }
  })().finally(() => {
    ended = true;
    wake?.();
  });
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
    const job = queues[fn].shift()!;
    const reply = await isolates[fn].ask({ type: "run", header: job.run, body: job.body }, [job.body.buffer]);
    if (reply.type !== "result") throw new Error(`function ${fn} answered ${reply.type} to a batch`);
    await answer(reply.header, reply.body);
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
  const isolates = config.functions.map((f) => new FunctionIsolate(f, config.bindingPath, exitWith));
  // Loaded side by side; the gpu-let is ready when all of them are.
  const answers = await Promise.all(
    isolates.map((iso, i) =>
      iso.ask({ type: "init", config: config.functions[i], threads: config.threads, cuda: config.cuda ?? false })
    ),
  );
  const failed = answers.findIndex((a) => a.type !== "ready");
  if (failed >= 0) {
    const a = answers[failed];
    const fatal: FatalMessage = a.type === "fatal"
      ? { type: "fatal", stage: a.stage, error: describe(a.error) }
      : { type: "fatal", stage: "load", error: `unexpected answer ${a.type}` };
    if (config.functions.length > 1) fatal.error = `${config.functions[failed].name}: ${fatal.error}`;
    await writer.write(fatal).catch(() => {});
    exitWith(EXIT_FATAL);
  }
  const ready: ReadyMessage = {
    type: "ready",
    pid: Deno.pid,
    functions: answers.map((a) => (a as { ready: FunctionReady }).ready),
  };
  await writer.write(ready);
  await serveInTurns(reader, isolates, async (header, body) => await writer.write(header, [body]));
  exitWith(0);
}

if (import.meta.main) {
  // The controller going away closes the socket; any unexpected error ends the process (it is restarted).
  main().catch((e) => {
    console.error(`gpulet worker: ${describe(e)}`);
    Deno.exit(1);
  });
}
