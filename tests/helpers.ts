/** Shared helpers for integration tests: a real server on a free loopback port, with its own state. */
import { deployFolder } from "../src/api/admin_client.ts";
import { encodeBase64 } from "../src/functions/bundle.ts";
import { loadProfile } from "../src/planner/profiles.ts";
import { type RunningServer, type ServerOptions, startServer } from "../src/server.ts";
import { seededRandom } from "../src/planner/random.ts";

import { queueDepth } from "../src/api/admin_client.ts";

export { metric, queueDepth, workerPids } from "../src/api/admin_client.ts";

export const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** A shipped device's profiles (`profiles/<name>.csv` and its pairs), as the planner loads them. */
export const profile = (name: string) => loadProfile(`${ROOT}/profiles`, name);

/** Starts the platform on 127.0.0.1:<free port> with a temporary state directory (unless given). */
export async function startTestServer(
  opts: Partial<ServerOptions> = {},
): Promise<RunningServer & { stateDir: string }> {
  const stateDir = opts.stateDir ?? await Deno.makeTempDir({ prefix: "gpulet-test-" });
  const server = await startServer({ port: 0, stateDir, log: () => {}, ...opts });
  return { ...server, stateDir };
}

/** Bundles and deploys a function folder; returns the response body (throws on a non-2xx answer). */
export function deploy(server: RunningServer, folder: string, token?: string): Promise<Record<string, unknown>> {
  return deployFolder(server.url, folder, token);
}

/** A parsed JSON answer; tests read fields they assert on. */
// deno-lint-ignore no-explicit-any
export type JsonBody = any;

/** POSTs JSON and returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
): Promise<{ status: number; headers: Headers; body: JsonBody }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** A deterministic pseudo-random image for lenet (784 values in 0..255), from the project's seeded PRNG. */
export function testImage(seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: 784 }, () => Math.floor(random() * 256));
}

/** True if a process with this pid is running (a zombie waiting for its reaper has exited: not running). */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // "pid (comm) S ...": the state follows the last ")" (comm may contain spaces or parentheses).
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A function folder serving zoo `model` through its tensor interface (no pre/post-processing). */
export async function modelFunctionFolder(name: string, model: string, sloMs: number, maxBatch = 32): Promise<string> {
  const dir = `${await Deno.makeTempDir({ prefix: "gpulet-fn-" })}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/function.ts`,
    `import { defineFunction } from "gpulet";\n` +
      `export default defineFunction({ model: "${model}", sloMs: ${sloMs}, maxBatch: ${maxBatch} });\n`,
  );
  return dir;
}

/** Polls `cond` every 100 ms until it holds; throws after `timeoutMs`. Resolves with the time it took (ms). */
export async function waitFor(
  what: string,
  cond: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (await cond()) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Waits until `n` of `fn`'s requests are held (queued, or sent to a gpu-let and not answered) and resolves
 * with how many of them are queued. How many a busy gpu-let has been sent depends on timing (a request is
 * sent behind a running batch only just before it should end), so tests count from this rather than
 * assume it.
 */
export async function waitForHeld(url: string, fn: string, n: number, timeoutMs = 5000): Promise<number> {
  let queued = -1;
  await waitFor(`${n} requests to ${fn} to be held`, async () => {
    const plan = await (await fetch(`${url}/admin/plan`)).json();
    const sent = (plan.workers as { functions: { name: string; inflight: number }[] }[])
      .flatMap((w) => w.functions).filter((f) => f.name === fn).reduce((sum, f) => sum + f.inflight, 0);
    queued = await queueDepth(url, fn);
    return queued >= 0 && queued + sent === n;
  }, timeoutMs);
  return queued;
}

/** A `deno task start` child process on a free loopback port (or `host`), with its URL and output so far. */
export interface StartedCli {
  child: Deno.ChildProcess;
  url: string;
  /** Everything it printed so far. */
  output: () => string;
  /** Resolves when stdout ends. */
  done: Promise<void>;
}

/** A loopback port that was free a moment ago (for a process the test starts and must reach early). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts `src/cli/start.ts` as a real process (on `port`, default any) and waits until it prints where it listens. */
export async function startCli(args: string[], port = 0, env: Record<string, string> = {}): Promise<StartedCli> {
  const child = new Deno.Command(Deno.execPath(), {
    // gRPC on a free port too, unless the test chooses: two servers (or a user's) may hold the default.
    args: [
      "run",
      "-A",
      `${ROOT}/src/cli/start.ts`,
      "--port",
      String(port),
      ...(args.includes("--grpc-port") ? [] : ["--grpc-port", "0"]),
      ...args,
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let url = "";
  while (!url) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`start exited early: ${out}`);
    out += value;
    url = out.match(/listening on (http:\/\/[0-9.:]+)/)?.[1] ?? "";
  }
  const done = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      out += value;
    }
  })();
  return { child, url, output: () => out, done };
}

/**
 * A deploy bundle whose `function.ts` is `source`, built by hand: `bundleFolder` would import it in the test
 * process, and these sources are meant to crash or misbehave. Extra files are given as bytes.
 */
export function rawBundle(
  name: string,
  source: string,
  manifest: Record<string, unknown> = {},
  files: Record<string, Uint8Array> = {},
) {
  return {
    manifest: { name, model: "lenet", sloMs: 1000, maxBatch: 4, json: true, ...manifest },
    files: [
      { path: "function.ts", base64: encodeBase64(new TextEncoder().encode(source)) },
      ...Object.entries(files).map(([path, data]) => ({ path, base64: encodeBase64(data) })),
    ],
  };
}

/** Runs `src/cli/<task>.ts` with read access only (the offline tools); its exit code and output. */
export async function runTask(task: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", `${ROOT}/src/cli/${task}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}
