/**
 * How a gpu-let process is started: the `deno run` command line with least permissions (what its functions
 * need together; each function's isolate gets only its own share), pinned to its cores. Pure, so the
 * composition is testable without spawning anything.
 */
import type { WorkerConfig } from "./protocol.ts";

/** Project root (holds deno.json and node_modules). */
export const PROJECT_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Path of the onnxruntime N-API binding for this platform: the only thing a worker may load with ffi. */
export function ortBindingPath(root = PROJECT_ROOT): string {
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  const pkg = Deno.realPathSync(`${root}/node_modules/onnxruntime-node`);
  return `${pkg}/bin/napi-v6/${Deno.build.os}/${arch}/onnxruntime_binding.node`;
}

export interface WorkerCommandInput {
  config: WorkerConfig;
  /** CPU cores to pin to, or undefined for no pinning. */
  cores?: number[];
  denoPath?: string;
  tasksetPath?: string | null;
  root?: string;
}

/** The program and arguments that start a worker. */
export function workerCommand(input: WorkerCommandInput): { program: string; args: string[] } {
  const root = input.root ?? PROJECT_ROOT;
  const deno = input.denoPath ?? Deno.execPath();
  const sock = input.config.socket;
  const files = input.config.functions.flatMap((f) => [f.functionDir, f.modelFile]);
  // A time-shared gpu-let runs each function in a Web Worker with its own permissions (an unstable option
  // in Deno 2.9), loaded from the project's modules, which the process then reads (function code cannot).
  const shared = input.config.functions.length > 1;
  const denoArgs = [
    "run",
    `--config=${root}/deno.json`,
    "--cached-only",
    "--no-prompt",
    ...(shared ? ["--unstable-worker-options"] : []),
    `--allow-read=${[...new Set(files), ...(shared ? [`${root}/src`] : []), sock].join(",")}`,
    `--allow-write=${sock}`,
    `--allow-net=unix:${sock}`,
    `--allow-ffi=${input.config.bindingPath}`,
    `${root}/src/runtime/worker_main.ts`,
    JSON.stringify(input.config),
  ];
  if (input.cores && input.cores.length && input.tasksetPath) {
    return { program: input.tasksetPath, args: ["-c", input.cores.join(","), deno, ...denoArgs] };
  }
  return { program: deno, args: denoArgs };
}

/** Absolute path of `taskset` if this machine has it (util-linux), else null. */
export function findTaskset(): string | null {
  for (const p of ["/usr/bin/taskset", "/bin/taskset", "/usr/local/bin/taskset"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  return null;
}

/** Environment for workers: only what Deno itself needs to find its caches (the worker cannot read env). */
export function workerEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", RUST_BACKTRACE: "0" };
  for (const k of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return env;
}
