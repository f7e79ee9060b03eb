/**
 * What the controller's handles on its child processes share (a gpu-let process, `worker.ts`; an app
 * process, `app_process.ts`): the child, its exit, the tail of its stderr for error messages, and stopping
 * it over its socket (then killing it if it does not exit in time).
 */
import type { FrameWriter } from "./framing.ts";

/** How long a stopping process may take to exit after its last message before it is killed (ms). */
const STOP_GRACE_MS = 5_000;

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
