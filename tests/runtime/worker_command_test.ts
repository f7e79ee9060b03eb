import assert from "node:assert/strict";
import { workerCommand, workerEnv } from "../../src/runtime/worker_command.ts";
import type { WorkerConfig } from "../../src/runtime/protocol.ts";

const lenet = {
  name: "lenet",
  functionDir: "/state/functions/lenet/1",
  functionFile: "/state/functions/lenet/1/function.ts",
  modelFile: "/models/lenet.onnx",
  warmBatches: [1, 2],
  manifest: { name: "lenet", model: "lenet", sloMs: 100, maxBatch: 2, json: true },
};
const config: WorkerConfig = {
  socket: "/tmp/gpulet-x/w1.sock",
  threads: 1,
  bindingPath: "/root/ort.node",
  functions: [lenet],
};

Deno.test("worker command: least permissions, pinned with taskset when cores are given", () => {
  const { program, args } = workerCommand({
    config,
    cores: [1, 2],
    denoPath: "/bin/deno",
    tasksetPath: "/usr/bin/taskset",
    root: "/root",
  });
  assert.equal(program, "/usr/bin/taskset");
  assert.deepEqual(args.slice(0, 3), ["-c", "1,2", "/bin/deno"]);
  const flags = args.filter((a) => a.startsWith("--"));
  assert.deepEqual(flags, [
    "--config=/root/deno.json",
    "--cached-only",
    "--no-prompt",
    "--allow-read=/state/functions/lenet/1,/models/lenet.onnx,/tmp/gpulet-x/w1.sock",
    "--allow-write=/tmp/gpulet-x/w1.sock",
    "--allow-net=unix:/tmp/gpulet-x/w1.sock",
    "--allow-ffi=/root/ort.node",
  ]);
  for (const forbidden of ["--allow-all", "-A", "--allow-env", "--allow-run", "--allow-sys"]) {
    assert.ok(!args.some((a) => a.startsWith(forbidden)), forbidden);
  }
  assert.deepEqual(JSON.parse(args.at(-1)!), config);
});

Deno.test("worker command of a time-shared gpu-let: one process reads each function's folder and model once, and starts its isolates", () => {
  const vad = {
    ...lenet,
    name: "vad",
    functionDir: "/state/functions/vad/3",
    functionFile: "/state/functions/vad/3/function.ts",
    modelFile: "/state/functions/vad/3/silero.onnx",
  };
  const other = { ...lenet, name: "lenet2", functionDir: "/state/functions/lenet2/1" };
  const { args } = workerCommand({
    config: { ...config, functions: [lenet, vad, other] },
    denoPath: "/bin/deno",
    tasksetPath: null,
    root: "/root",
  });
  // Each function runs in a Web Worker with its own permissions, loaded from the project's modules.
  assert.ok(args.includes("--unstable-worker-options"));
  assert.ok(
    args.includes(
      "--allow-read=/state/functions/lenet/1,/models/lenet.onnx,/state/functions/vad/3," +
        "/state/functions/vad/3/silero.onnx,/state/functions/lenet2/1,/root/src,/tmp/gpulet-x/w1.sock",
    ),
    args.join(" "),
  );
});

Deno.test("worker command without taskset runs deno directly; env carries no secrets", () => {
  const { program } = workerCommand({
    config,
    cores: [0],
    denoPath: "/bin/deno",
    tasksetPath: null,
    root: "/r",
  });
  assert.equal(program, "/bin/deno");
  const env = workerEnv();
  for (const k of Object.keys(env)) {
    assert.ok(["NO_COLOR", "RUST_BACKTRACE", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH", "TMPDIR"].includes(k), k);
  }
});
