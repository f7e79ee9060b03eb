/**
 * The controller's handle on an app process (`app_main.ts`): start it with least permissions, send it
 * requests, pass its stage calls on (to `onCall`) and their replies back, learn when it dies, stop it.
 */
import type { FrameReader } from "./framing.ts";
import { SocketProcess, WorkerLostError } from "./socket_process.ts";
import type { AnswerMessage, AppConfig, AppToController, CallMessage, ReplyMessage } from "./app_protocol.ts";
import { PROJECT_ROOT, workerEnv } from "./worker_command.ts";

/** An app request's outcome as the process gave it: its JSON answer's bytes, or an error. */
export type AppResult = { ok: true; json: Uint8Array } | { ok: false; status: number; error: string };

export interface AppProcessSpec {
  id: string;
  config: Omit<AppConfig, "socket">;
  runtimeDir: string;
  startTimeoutMs?: number;
  /** A stage call from the app's code: answer it with `reply`. `body` is the caller's own copy. */
  onCall: (call: CallMessage, body: Uint8Array) => void;
}

const START_TIMEOUT_MS = 60_000;

/** The `deno run` command line of an app process: read of its folder and socket, nothing else but the socket. */
export function appCommand(config: AppConfig, root = PROJECT_ROOT, deno = Deno.execPath()): string[] {
  const sock = config.socket;
  return [
    deno,
    "run",
    `--config=${root}/deno.json`,
    "--cached-only",
    "--no-prompt",
    `--allow-read=${config.appDir},${sock}`,
    `--allow-write=${sock}`,
    `--allow-net=unix:${sock}`,
    `${root}/src/runtime/app_main.ts`,
    JSON.stringify(config),
  ];
}

/** A running app process. */
export class AppProcess extends SocketProcess {
  private readonly pending = new Map<number, (r: AppResult) => void>();

  private constructor(readonly id: string, child: Deno.ChildProcess, private readonly spec: AppProcessSpec) {
    super(child);
  }

  /** Spawns the app process and waits until its code is imported and checked, or it fails. */
  static start(spec: AppProcessSpec): Promise<AppProcess> {
    return SocketProcess.launch<AppProcess, { pid: number }>({
      runtimeDir: spec.runtimeDir,
      prefix: "a",
      spawn: (socket) => {
        const [program, ...args] = appCommand({ ...spec.config, socket });
        return new AppProcess(spec.id, SocketProcess.spawnChild(program, args, workerEnv()), spec);
      },
      timeoutMs: spec.startTimeoutMs ?? START_TIMEOUT_MS,
      label: "app process",
      loading: "loading its code",
      readyStage: "import",
      loadStage: "import",
      readerBytes: 64 * 1024,
    }, (p, ready, reader) => {
      p.pid = ready.pid;
      p.readLoop(reader);
    });
  }

  private async readLoop(reader: FrameReader): Promise<void> {
    let why = `app process ${this.id} closed its connection`;
    try {
      for (;;) {
        const frame = await reader.next<AppToController>();
        if (!frame) break;
        const msg = frame.header;
        const body = frame.body.slice();
        frame.release();
        if (msg.type === "call") this.spec.onCall(msg, body);
        else if (msg.type === "answer") this.settle(msg, body);
      }
    } catch (e) {
      why = `app process ${this.id}: ${e instanceof Error ? e.message : e}`;
    }
    why = await this.connectionEnded(why, (how) => `the app's process died (${how})`);
    for (const resolve of this.pending.values()) resolve({ ok: false, status: 503, error: why });
    this.pending.clear();
  }

  private settle(msg: AnswerMessage, body: Uint8Array): void {
    const resolve = this.pending.get(msg.req);
    if (!resolve) return;
    this.pending.delete(msg.req);
    resolve(msg.ok ? { ok: true, json: body } : { ok: false, status: msg.status, error: msg.error });
  }

  /** Requests sent and not yet answered. */
  get inflight(): number {
    return this.pending.size;
  }

  /** Sends request `req` (its JSON body) with `budgetMs` of its SLO left; resolves with its one result. */
  invoke(req: number, body: Uint8Array, budgetMs: number): Promise<AppResult> {
    return new Promise((resolve) => {
      this.pending.set(req, resolve);
      this.writer!.write({ type: "invoke", req, budgetMs }, [body]).catch((e) => {
        if (this.pending.delete(req)) {
          resolve({ ok: false, status: 503, error: new WorkerLostError(`app process: ${e.message ?? e}`).message });
        }
      });
    });
  }

  /** Forgets request `req` (answered by the controller already): a late answer is dropped. */
  forget(req: number): void {
    this.pending.delete(req);
  }

  /** Answers a stage call. */
  reply(msg: ReplyMessage, body?: Uint8Array): void {
    this.writer!.write(msg, body ? [body] : []).catch(() => {/* the process is gone; its requests fail */});
  }
}
