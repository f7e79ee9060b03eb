/**
 * On this host (no NVIDIA driver), `--devices cuda` stops with one message that names the fix and exit code
 * 2, for `start` and for `profile` alike; it never starts serving on the CPU instead.
 */
import assert from "node:assert/strict";
import { ROOT } from "../helpers.ts";

async function run(script: string, args: string[]) {
  const state = await Deno.makeTempDir({ prefix: "gpulet-cuda-cli-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/src/cli/${script}`, ...args, "--state", state],
    cwd: ROOT,
    // No driver here; the PATH without one makes sure of it on any CI machine.
    env: { PATH: "/usr/bin:/bin" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("start --devices cuda without a driver: exit 2, one line naming the fix, nothing listening", async () => {
  const r = await run("start.ts", ["--devices", "cuda", "--port", "0"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr.trim(),
    "--devices cuda: no NVIDIA driver found (nvidia-smi is not on PATH). Install the NVIDIA driver, or start with --devices cpu.",
  );
  assert.doesNotMatch(r.stdout, /listening/);
  const bad = await run("start.ts", ["--devices", "cuda", "--mps", "sometimes"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--mps sometimes: expected existing or start/);
});

Deno.test("profile --devices cuda without a driver: exit 2 with the same message", async () => {
  const r = await run("profile.ts", ["--devices", "cuda", "--models", "lenet"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^--devices cuda: no NVIDIA driver found/);
});
