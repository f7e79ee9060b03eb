/**
 * Running the NVIDIA tools (`nvidia-smi`, `nvidia-cuda-mps-control`) behind an interface, so tests can see the
 * commands issued and give captured outputs without a GPU.
 */

/** What a command printed and how it ended. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  /** Runs `program` (looked up in PATH); throws Deno.errors.NotFound when it does not exist. */
  run(program: string, args: string[], opts?: { env?: Record<string, string>; stdin?: string }): Promise<CommandResult>;
  /** True if `path` exists (a file, directory or FIFO). */
  exists(path: string): Promise<boolean>;
}

/** The real runner: `Deno.Command`. */
export const systemRunner: CommandRunner = {
  async run(program, args, opts = {}) {
    const child = new Deno.Command(program, {
      args,
      env: opts.env,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  },
  async exists(path) {
    try {
      await Deno.lstat(path);
      return true;
    } catch {
      return false;
    }
  },
};
