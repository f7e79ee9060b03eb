/**
 * The `cuda` backend end to end on a host without a GPU: the NVIDIA tools are stood in for, everything else
 * is real (controller, planner with GPU memory, worker processes, onnxruntime-node). onnxruntime here has no
 * CUDA provider, so a gpu-let must fail to load rather than quietly run on the CPU.
 */
import assert from "node:assert/strict";
import { cudaWorkerEnv, modelMemoryMiB } from "../../src/cuda/worker_env.ts";
import type { CommandResult, CommandRunner } from "../../src/cuda/runner.ts";
import { ORT_CUDA_PROVIDER } from "../../src/cuda/setup.ts";
import { DEFAULT_PROFILES_DIR } from "../../src/controller/controller.ts";
import { workerCommand } from "../../src/runtime/worker_command.ts";
import { makePlan } from "../../src/planner/policies.ts";
import { DEFAULT_OPTIONS } from "../../src/planner/planner.ts";
import { loadLatencyModel } from "../../src/planner/latency_model.ts";
import { postJson, ROOT, startTestServer } from "../helpers.ts";
import { bundleFolder } from "../../src/functions/bundle.ts";

Deno.test("a gpu-let's environment places it: its GPU, its SM share, its memory, the MPS daemon", () => {
  assert.deepEqual(cudaWorkerEnv({ gpuIndex: 3, part: 37.5, memoryMiB: 1234.2, pipeDir: "/s/mps/pipe" }), {
    CUDA_VISIBLE_DEVICES: "3",
    CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: "38",
    CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "0=1235M",
    CUDA_MPS_PIPE_DIRECTORY: "/s/mps/pipe",
  });
  assert.throws(() => cudaWorkerEnv({ gpuIndex: 0, part: 0, memoryMiB: 1, pipeDir: "/p" }), /part 0/);
  assert.equal(modelMemoryMiB(100 * 1024 * 1024), 264);
  // The sandbox is the same as on the CPU: no environment, process or network access for function code.
  const { args } = workerCommand({
    config: {
      socket: "/tmp/g/w.sock",
      threads: 1,
      bindingPath: "/ort/onnxruntime_binding.node",
      cuda: true,
      functions: [{
        name: "f",
        functionDir: "/f",
        functionFile: "/f/function.ts",
        modelFile: "/m/lenet.onnx",
        warmBatches: [1],
        manifest: { name: "f", model: "lenet", sloMs: 10, maxBatch: 1, json: false },
      }],
    },
    tasksetPath: null,
  });
  assert.ok(!args.some((a) => /^--allow-(env|run|all|sys)|^-A$/.test(a)), args.join(" "));
  assert.ok(args.includes("--allow-ffi=/ort/onnxruntime_binding.node"));
  assert.equal(JSON.parse(args.at(-1)!).cuda, true);
});

Deno.test("planner with GPU memory: no GPU holds more worker processes than its memory", async () => {
  const latency = await loadLatencyModel(`${DEFAULT_PROFILES_DIR}/h100.csv`);
  const functions = ["a", "b", "c", "d", "e", "f"].map((name) => ({
    name,
    model: "resnet50",
    rate: 200,
    sloMs: 50,
    maxBatch: 32,
  }));
  const problem = { device: "h100", gpus: 8, functions, latency };
  const memory = { deviceMb: 81559, contextMb: 600, modelMb: { resnet50: 30_000 } };
  const free = makePlan(problem, "gpulet-noint");
  const bounded = makePlan(problem, "gpulet-noint", { ...DEFAULT_OPTIONS, memory });
  const processes = (plan: typeof free) => plan.gpus.map((g) => g.gpulets.reduce((n, l) => n + l.functions.length, 0));
  // 30 GB models: two processes per 80 GB GPU at most.
  assert.ok(Math.max(...processes(free)) > 2, `unbounded plan packs ${processes(free)}`);
  assert.ok(processes(bounded).every((n) => n * (30_000 + 600) <= 81559), `bounded plan: ${processes(bounded)}`);
  assert.ok(bounded.gpusUsed > free.gpusUsed);
  assert.ok(bounded.feasible);
});

/** Stands in for `nvidia-smi` (two H100s) and `nvidia-cuda-mps-control`; the rest of the file system is real. */
class TwoH100s implements CommandRunner {
  calls: string[] = [];
  private daemon = false;
  run(program: string, args: string[], opts: { stdin?: string } = {}): Promise<CommandResult> {
    this.calls.push([program, ...args, opts.stdin?.trim() ?? ""].join(" ").trim());
    if (program === "nvidia-smi") {
      return Promise.resolve({
        code: 0,
        stdout:
          "0, NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled\n1, NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled\n",
        stderr: "",
      });
    }
    if (program === "nvidia-cuda-mps-control") {
      this.daemon = args[0] === "-d";
      return Promise.resolve({ code: 0, stdout: "", stderr: "" });
    }
    return Promise.reject(new Deno.errors.NotFound(program));
  }
  async exists(path: string): Promise<boolean> {
    if (path.endsWith(`/${ORT_CUDA_PROVIDER}`)) return true; // pretend: the point is what happens next
    if (path.endsWith("/mps/pipe/control")) return this.daemon;
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  }
}

Deno.test("--devices cuda never falls back to the CPU: without the CUDA provider a deploy is refused at load", async () => {
  const runner = new TwoH100s();
  const server = await startTestServer({ devices: "cuda", mps: "start", cudaRunner: runner });
  try {
    const devices = await (await fetch(`${server.url}/admin/plan`)).json();
    assert.equal(devices.devices.kind, "cuda");
    assert.equal(devices.devices.count, 2);
    assert.deepEqual(runner.calls.slice(0, 2), [
      "nvidia-smi --query-gpu=index,name,memory.total,compute_mode,mig.mode.current --format=csv,noheader",
      "nvidia-cuda-mps-control -d",
    ]);
    const r = await postJson(`${server.url}/admin/functions`, await bundleFolder(`${ROOT}/functions/lenet`));
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error, /cannot be served \(load\): .*(Failed to load shared library|unsupported: 'cuda')/);
    assert.equal((await fetch(`${server.url}/v2/models/lenet`)).status, 404, "never served on the CPU instead");
    const plan = await (await fetch(`${server.url}/admin/plan`)).json();
    assert.deepEqual(plan.workers, [], "no worker left running");
  } finally {
    await server.shutdown();
  }
  assert.equal(runner.calls.at(-1), "nvidia-cuda-mps-control quit", "the daemon gpulet started is stopped");
});
