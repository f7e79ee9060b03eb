/**
 * What the controller's handles on its child processes share (a gpu-let process, `worker.ts`; an app
 * process, `app_process.ts`): starting one (a fresh socket, the child connects back and says whether it is
 * ready), the child, its exit, the tail of its stderr for error messages, and stopping it over its socket
 * (then killing it if it does not exit in time).
 */
import { type Frame, FrameReader, FrameWriter } from "./framing.ts";

/** How long a stopping process may take to exit after its last message before it is killed (ms). */
const STOP_GRACE_MS = 5_000;
/** Socket names are short (Unix socket paths are limited to ~108 bytes): a counter, not the id. */
let socketSeq = 0;

/** A process failed to start; `stage` says where (spawn, load, warmup, import, …). */
export class WorkerStartError extends Error {
  constructor(readonly stage: string, message: string) {
    super(message);
  }
}

/** The process died or was stopped while work was in flight (a gpu-let's batch, an app's request). */
export class WorkerLostError extends Error {}

/** How {@link SocketProcess.launch} starts a child, and what its start errors call things. */
export interface Launch<P> {
  /** Folder of the socket file, and its name's prefix. */
  runtimeDir: string;
  prefix: string;
  /** Spawns the child that will connect to `socket`, and wraps it. */
  spawn: (socket: string) => P;
  /** Bound on connecting, and again on the first message after it (ms). */
  timeoutMs: number;
  /** "worker", "app process": the subject of every start error. */
  label: string;
  /** What the child does before it is ready, as in "while loading the function". */
  loading: string;
  /** Error stages: of a first message that does not come in time, and of a child gone before sending one. */
  readyStage: string;
  loadStage: string;
  /** The first frame buffer of the connection's reader (bytes; FrameReader's default when absent). */
  readerBytes?: number;
}

/** The first message of every child: `ready` (with its own fields), or `fatal` with the stage it failed in. */
type FirstMessage = { type: string; stage?: string; error?: string };

/** A child process the controller talks to over one Unix socket. */
export abstract class SocketProcess {
  pid = 0;
  /** Resolves when the process has exited (expected or not). */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Set once `stop()` was called: an exit after that is not a crash (after `kill()` it is). */
  stopping = false;
  /** The last 2,000 characters the process wrote to stderr. */
  protected stderrTail = "";
  protected conn?: Deno.Conn;
  protected writer?: FrameWriter;

  protected constructor(private readonly child: Deno.ChildProcess) {
    this.exited = child.status;
    this.collectStderr(child.stderr);
  }

  private async collectStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) this.stderrTail = (this.stderrTail + dec.decode(chunk)).slice(-2000);
    } catch { /* process gone */ }
  }

  /**
   * Starts a child: listens on a fresh socket, spawns it (`l.spawn`), waits for it to connect and for its
   * first message. A `fatal` one, another one than `ready`, the child's exit or a timeout fail the start with
   * a {@link WorkerStartError} that says which; `ready` gets the `ready` message and the reader (for the read
   * loop) and may throw too. On failure the child is killed; the socket file is removed either way.
   */
  protected static async launch<P extends SocketProcess, R>(
    l: Launch<P>,
    ready: (p: P, message: R, reader: FrameReader) => void,
  ): Promise<P> {
    const socket = `${l.runtimeDir}/${l.prefix}${socketSeq++}.sock`;
    await Deno.remove(socket).catch(() => {});
    const listener = Deno.listen({ transport: "unix", path: socket });
    const p = l.spawn(socket);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = (stage: string, what: string) =>
      new Promise<never>((_, rej) => {
        clearTimeout(timer);
        timer = setTimeout(
          () => rej(new WorkerStartError(stage, `${l.label} ${what} in ${l.timeoutMs} ms`)),
          l.timeoutMs,
        );
      });
    try {
      const conn = await Promise.race([
        listener.accept(),
        p.exited.then((s) => {
          throw new WorkerStartError(
            "spawn",
            `${l.label} exited with code ${s.code} before connecting: ${p.stderrTail.trim()}`,
          );
        }),
        timeout("spawn", "did not connect"),
      ]);
      p.conn = conn;
      p.writer = new FrameWriter(conn);
      const reader = new FrameReader(conn, l.readerBytes);
      const first: Frame<FirstMessage> | null = await Promise.race([
        reader.next<FirstMessage>(),
        timeout(l.readyStage, "not ready"),
      ]);
      if (!first) {
        // It died while importing its code, loading or warming up: say how.
        const status = await Promise.race([p.exited, new Promise<null>((r) => setTimeout(() => r(null), 1000))]);
        const how = status
          ? (status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`)
          : "";
        const tail = p.stderrTail.trim();
        throw new WorkerStartError(
          l.loadStage,
          `${l.label} ${how || "closed its socket"} while ${l.loading}${tail ? `: ${tail}` : ""}`,
        );
      }
      const h = first.header;
      if (h.type === "fatal") throw new WorkerStartError(String(h.stage), String(h.error));
      if (h.type !== "ready") throw new WorkerStartError(l.loadStage, `unexpected first message from the ${l.label}`);
      ready(p, h as R, reader);
      return p;
    } catch (e) {
      p.kill();
      await p.exited;
      try {
        p.conn?.close();
      } catch { /* closed by its end */ }
      throw e;
    } finally {
      clearTimeout(timer);
      listener.close();
      await Deno.remove(socket).catch(() => {});
    }
  }

  /**
   * Spawns a child as every gpulet child runs: only the environment given (`clearEnv`), no stdin or stdout,
   * stderr kept for its errors.
   */
  protected static spawnChild(program: string, args: string[], env: Record<string, string>): Deno.ChildProcess {
    return new Deno.Command(program, { args, env, clearEnv: true, stdin: "null", stdout: "null", stderr: "piped" })
      .spawn();
  }

  /**
   * Closes the connection once its reader has ended, and says why it ended: `why`, unless the process died
   * (and was not being stopped), then `died(how)` with its exit and its last stderr line.
   */
  protected async connectionEnded(why: string, died: (how: string) => string): Promise<string> {
    const status = await Promise.race([this.exited, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
    if (status && !this.stopping) {
      const last = this.stderrTail ? `: ${this.stderrTail.trim().split("\n").pop()}` : "";
      why = `${died(status.signal ?? `exit code ${status.code}`)}${last}`;
    }
    try {
      this.conn?.close();
    } catch { /* already closed */ }
    return why;
  }

  /** Asks the process to exit after what it was sent; kills it if it has not exited within `graceMs`. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
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
