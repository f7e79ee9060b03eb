/**
 * `--devices cuda` set-up without a GPU: captured `nvidia-smi` outputs and a recording runner stand in for
 * the NVIDIA tools, so every check, every failure message and every MPS command issued is tested here.
 */
import assert from "node:assert/strict";
import type { CommandResult, CommandRunner } from "../../src/cuda/runner.ts";
import { CudaSetupError, DEFAULT_MPS_PIPE_DIR, ORT_CUDA_PROVIDER, prepareCuda } from "../../src/cuda/setup.ts";
import { GPU_QUERY } from "../../src/cuda/nvidia_smi.ts";

const H100 =
  "0, NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled\n1, NVIDIA H100 80GB HBM3, 81559 MiB, Default, Disabled\n";
const ORT_DIR = "/ort/bin";
const PROFILES = "/profiles";

/** A runner with canned answers that records what was asked of it. */
class FakeRunner implements CommandRunner {
  calls: { program: string; args: string[]; env?: Record<string, string>; stdin?: string }[] = [];
  files = new Set([`${ORT_DIR}/${ORT_CUDA_PROVIDER}`, `${PROFILES}/h100.csv`, `${DEFAULT_MPS_PIPE_DIR}/control`]);
  constructor(private readonly answers: Record<string, CommandResult | "missing">) {}
  run(program: string, args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
    this.calls.push({ program, args, ...opts });
    const a = this.answers[program];
    if (a === undefined || a === "missing") return Promise.reject(new Deno.errors.NotFound(program));
    if (program === "nvidia-cuda-mps-control" && args[0] === "-d") {
      this.files.add(`${opts.env!.CUDA_MPS_PIPE_DIRECTORY}/control`);
    }
    return Promise.resolve(a);
  }
  exists(path: string) {
    return Promise.resolve(this.files.has(path));
  }
}

const ok = (stdout = ""): CommandResult => ({ code: 0, stdout, stderr: "" });

async function setupWith(runner: FakeRunner, over: Partial<Parameters<typeof prepareCuda>[0]> = {}) {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-cuda-" });
  const setup = await prepareCuda({
    stateDir,
    mps: "existing",
    profilesDir: PROFILES,
    ortBinDir: ORT_DIR,
    runner,
    ...over,
  });
  return { setup, stateDir };
}

async function refused(runner: FakeRunner, re: RegExp, over: Partial<Parameters<typeof prepareCuda>[0]> = {}) {
  await assert.rejects(setupWith(runner, over), (e: unknown) => {
    assert.ok(e instanceof CudaSetupError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("a running MPS daemon and two H100s: ready, with the h100 profile; only nvidia-smi's query was run", async () => {
  const runner = new FakeRunner({ "nvidia-smi": ok(H100) });
  const { setup } = await setupWith(runner);
  assert.deepEqual(setup.gpus.map((g) => [g.index, g.type]), [[0, "h100"], [1, "h100"]]);
  assert.equal(setup.profile, "h100");
  assert.equal(setup.pipeDir, DEFAULT_MPS_PIPE_DIR);
  assert.equal(setup.startedMps, false);
  await setup.stop();
  // Nothing but the query: gpulet never changes compute modes or MIG, and leaves a daemon it did not start.
  assert.deepEqual(runner.calls, [{ program: "nvidia-smi", args: GPU_QUERY }]);
});

Deno.test("--mps start: the daemon starts under the state directory and is told to quit on shutdown", async () => {
  const runner = new FakeRunner({ "nvidia-smi": ok(H100), "nvidia-cuda-mps-control": ok() });
  runner.files.delete(`${DEFAULT_MPS_PIPE_DIR}/control`);
  const { setup, stateDir } = await setupWith(runner, { mps: "start" });
  const env = { CUDA_MPS_PIPE_DIRECTORY: `${stateDir}/mps/pipe`, CUDA_MPS_LOG_DIRECTORY: `${stateDir}/mps/log` };
  assert.equal(setup.pipeDir, env.CUDA_MPS_PIPE_DIRECTORY);
  assert.equal(setup.startedMps, true);
  assert.ok((await Deno.stat(env.CUDA_MPS_LOG_DIRECTORY)).isDirectory);
  await setup.stop();
  await setup.stop();
  assert.deepEqual(runner.calls.slice(1), [
    { program: "nvidia-cuda-mps-control", args: ["-d"], env },
    { program: "nvidia-cuda-mps-control", args: [], env, stdin: "quit\n" },
  ]);
  // CUDA_MPS_PIPE_DIRECTORY from the environment names the daemon to use without --mps start.
  const other = new FakeRunner({ "nvidia-smi": ok(H100) });
  other.files.add("/run/mps/control");
  assert.equal((await setupWith(other, { envPipeDir: "/run/mps" })).setup.pipeDir, "/run/mps");
});

Deno.test("each failure stops start-up with one message that names its fix", async () => {
  await refused(
    new FakeRunner({}),
    /no NVIDIA driver found \(nvidia-smi is not on PATH\)\. Install the NVIDIA driver, or start with --devices cpu/,
  );
  await refused(
    new FakeRunner({
      "nvidia-smi": {
        code: 9,
        stdout: "",
        stderr: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
      },
    }),
    /nvidia-smi failed \(exit 9\): NVIDIA-SMI has failed because it couldn't communicate .* driver must be loaded/,
  );
  await refused(
    new FakeRunner({ "nvidia-smi": ok("") }),
    /nvidia-smi lists no GPU\. Make the GPUs visible .*--gpus all/,
  );
  await refused(
    new FakeRunner({ "nvidia-smi": ok("0, NVIDIA A100-SXM4-40GB, 40960 MiB, Default, Enabled\n") }),
    /GPU 0 \(NVIDIA A100-SXM4-40GB\) has MIG enabled; .*gpulet never changes it: .*nvidia-smi -i 0 -mig 0/,
  );
  await refused(
    new FakeRunner({ "nvidia-smi": ok("0, NVIDIA H100 80GB HBM3, 81559 MiB, Prohibited, Disabled\n") }),
    /compute mode Prohibited.*nvidia-smi -i 0 -c DEFAULT/,
  );
  await refused(
    new FakeRunner({ "nvidia-smi": ok("0, NVIDIA GeForce RTX 4090, 24564 MiB, Default, [N/A]\n") }),
    /cannot tell which profile fits NVIDIA GeForce RTX 4090; pass --profile NAME/,
  );
  await refused(
    new FakeRunner({ "nvidia-smi": ok("0, NVIDIA A100-SXM4-80GB, 81920 MiB, Default, Disabled\n") }),
    /no profile \/profiles\/a100\.csv\. Measure one on this GPU \(deno task profile --devices cuda --out profiles\/a100\.csv\)/,
  );
  const noProvider = new FakeRunner({ "nvidia-smi": ok(H100) });
  noProvider.files.delete(`${ORT_DIR}/${ORT_CUDA_PROVIDER}`);
  await refused(
    noProvider,
    /installed without its CUDA provider .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node/,
  );
  const noDaemon = new FakeRunner({ "nvidia-smi": ok(H100) });
  noDaemon.files.delete(`${DEFAULT_MPS_PIPE_DIR}/control`);
  await refused(noDaemon, /no MPS control daemon \(no \/tmp\/nvidia-mps\/control\)\. Start one .* or pass --mps start/);
  const noMpsTool = new FakeRunner({ "nvidia-smi": ok(H100) });
  noMpsTool.files.delete(`${DEFAULT_MPS_PIPE_DIR}/control`);
  await refused(noMpsTool, /--mps start: nvidia-cuda-mps-control is not on PATH/, { mps: "start" });
  // A failed check starts nothing: no daemon was started before the provider check refused.
  assert.ok(noProvider.calls.every((c) => c.program === "nvidia-smi"));
});
