/**
 * Integration: worker crashes, draining on shutdown, restart with state kept, and SIGTERM of the real
 * `deno task start` process leaving no worker behind.
 */
import assert from "node:assert/strict";
import {
  deploy,
  postJson,
  processAlive,
  ROOT,
  startCli,
  startTestServer,
  testImage,
  waitFor,
  workerPids,
} from "../helpers.ts";
import { binaryInferRequest } from "../../src/api/oip_client.ts";

Deno.test("a killed worker: its requests get an answer, it is respawned and serves again", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
    const [pid] = await workerPids(server.url);
    // Each request holds the worker ~60 ms; kill it while the queue is busy.
    const inflight = Array.from(
      { length: 12 },
      (_, i) => postJson(`${server.url}/functions/slow/invoke`, { delayMs: 60, value: i }).then((a) => a.status),
    );
    await new Promise((r) => setTimeout(r, 150));
    Deno.kill(pid, "SIGKILL");
    const statuses = await Promise.race([
      Promise.all(inflight),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error("requests hung after the worker died")), 30_000)),
    ]);
    assert.equal(statuses.length, 12);
    assert.ok(statuses.every((s) => s === 200 || s === 503), JSON.stringify(statuses));
    assert.ok(statuses.includes(503), "the batch running when the worker died was answered 503");
    assert.ok(statuses.includes(200), "requests queued behind it were served by the respawned worker");

    await waitFor("a new worker", async () => {
      const pids = await workerPids(server.url);
      return pids.length === 1 && pids[0] !== pid;
    });
    const after = await postJson(`${server.url}/functions/slow/invoke`, { delayMs: 0, value: 42 });
    assert.equal(after.status, 200);
    assert.equal(after.body.value, 42);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /gpulet_worker_restarts_total\{function="slow"\} 1/);
    assert.match(metrics, /gpulet_requests_total\{function="slow",code="503"\} [1-9]/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("shutdown drains accepted requests, then stops every worker", async () => {
  const server = await startTestServer();
  await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
  const pids = await workerPids(server.url);
  const requests = Array.from(
    { length: 5 },
    (_, i) => postJson(`${server.url}/functions/slow/invoke`, { delayMs: 50, value: i }),
  );
  await new Promise((r) => setTimeout(r, 30));
  await server.shutdown();
  const answers = await Promise.all(requests);
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200]);
  assert.deepEqual(answers.map((a) => a.body.value), [0, 1, 2, 3, 4]);
  for (const pid of pids) assert.equal(processAlive(pid), false, `worker ${pid} still running`);
});

Deno.test("restart keeps deployed functions and their versions; redeploy makes a new version", async () => {
  const first = await startTestServer();
  await deploy(first, `${ROOT}/functions/lenet`);
  await first.shutdown();

  const second = await startTestServer({ stateDir: first.stateDir });
  try {
    const list = await (await fetch(`${second.url}/admin/functions`)).json();
    assert.deepEqual(list.functions.map((f: { name: string; version: number }) => [f.name, f.version]), [["lenet", 1]]);
    assert.equal((await (await fetch(`${second.url}/v2/health/ready`)).json()).ready, true);
    const r = await postJson(`${second.url}/functions/lenet/invoke`, { image: testImage(5) });
    assert.equal(r.status, 200);
    assert.equal(r.body.logits.length, 10);

    // A redeploy is version 2; requests keep being served during the switch.
    const during = Array.from(
      { length: 20 },
      (_, i) => postJson(`${second.url}/functions/lenet/invoke`, { image: testImage(i) }),
    );
    const v2 = await deploy(second, `${ROOT}/functions/lenet`);
    assert.equal(v2.version, 2);
    assert.ok((await Promise.all(during)).every((a) => a.status === 200));
    const meta = await (await fetch(`${second.url}/v2/models/lenet`)).json();
    assert.deepEqual(meta.versions, ["2"]);
  } finally {
    await second.shutdown();
  }
});

Deno.test("SIGTERM to `deno task start` drains, stops every worker and exits 0", async () => {
  const state = await Deno.makeTempDir({ prefix: "gpulet-sigterm-" });
  const cli = await startCli(["--state", state]);
  await deploy({ url: cli.url } as never, `${ROOT}/functions/lenet`);
  const pids = await workerPids(cli.url);
  assert.equal(pids.length, 1);
  assert.ok(processAlive(pids[0]));
  cli.child.kill("SIGTERM");
  const status = await cli.child.status;
  await cli.done;
  assert.equal(status.code, 0, cli.output());
  assert.match(cli.output(), /SIGTERM: draining/);
  for (const pid of pids) assert.equal(processAlive(pid), false, `worker ${pid} survived SIGTERM`);
});

/** Pids of the gpu-let processes `parent` started (its children running the worker entry). */
function gpuletChildren(parent: number): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^[0-9]+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (ppid === parent && cmd.includes("src/runtime/worker_main.ts")) pids.push(Number(e.name));
    } catch { /* gone meanwhile */ }
  }
  return pids.sort((a, b) => a - b);
}

Deno.test("the default `deno task start` plans: three functions, the plan and its history, one process per gpu-let", async () => {
  const state = await Deno.makeTempDir({ prefix: "gpulet-onemode-" });
  const cli = await startCli(["--state", state]);
  try {
    // Two models with a CPU profile (planned) and one without (silero VAD: a fixed gpu-let).
    for (const f of ["lenet", "googlenet", "vad"]) await deploy({ url: cli.url } as never, `${ROOT}/functions/${f}`);
    const plan = await (await fetch(`${cli.url}/admin/plan`)).json();
    assert.equal(plan.policy, "gpulet");
    assert.equal(plan.devices.kind, "cpu");
    assert.ok(plan.history.length >= 1, "the plan changes are kept");
    const gpulets = plan.gpus.flatMap((g: { gpulets: unknown[] }) => g.gpulets);
    const names = gpulets.flatMap((l: { functions: { name: string }[] }) => l.functions.map((f) => f.name));
    assert.deepEqual([...new Set(names)].sort(), ["googlenet", "lenet", "vad"]);
    const vad = gpulets.find((l: { functions: { name: string }[] }) => l.functions[0].name === "vad");
    assert.equal(vad.fixed, true, "a model without a profile gets a fixed gpu-let");
    const planned = gpulets.filter((l: { fixed?: boolean }) => !l.fixed);
    assert.ok(planned.every((l: { functions: { rate: number }[] }) => l.functions.every((f) => f.rate > 0)));
    // As many worker processes as gpu-lets: the plan's pids are exactly the controller's worker children.
    const pids = gpulets.map((l: { pid: number }) => l.pid).sort((a: number, b: number) => a - b);
    assert.equal(new Set(pids).size, gpulets.length);
    // (A gpu-let a later plan replaced may still be finishing its stop for a moment.)
    await waitFor("as many worker processes as gpu-lets", () => {
      return JSON.stringify(gpuletChildren(cli.child.pid)) === JSON.stringify(pids);
    }, 10_000);
    assert.equal(plan.workers.length, gpulets.length);
    const metrics = await (await fetch(`${cli.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`^gpulet_workers ${gpulets.length}$`, "m"));
  } finally {
    cli.child.kill("SIGTERM");
    await cli.child.status;
    await cli.done;
  }
});

/** One OIP binary request of zeros for `name`'s first input (a row of its shape), answered 200 or not. */
async function inferZeros(url: string, name: string): Promise<number> {
  const meta = await (await fetch(`${url}/v2/models/${name}`)).json();
  const input = meta.inputs[0];
  const shape = input.shape.map((d: number) => (d < 0 ? 1 : d));
  const data = new Float32Array(shape.reduce((a: number, b: number) => a * b, 1));
  const req = binaryInferRequest([{ name: input.name, datatype: "FP32", shape, data }]);
  const res = await fetch(`${url}/v2/models/${name}/infer`, { method: "POST", body: req.body, headers: req.headers });
  await res.body?.cancel();
  return res.status;
}

Deno.test("a time-shared gpu-let of the live plan is one process serving both its functions; killed, it comes back whole", async () => {
  const server = await startTestServer();
  try {
    // On this machine's cores (one device, halves as parts) three planned functions cannot all have their own.
    for (const f of ["lenet", "googlenet", "mobilenet_v2"]) await deploy(server, `${ROOT}/functions/${f}`);
    const shared = async () => {
      const plan = await (await fetch(`${server.url}/admin/plan`)).json();
      return plan.gpus.flatMap((g: { gpulets: { functions: { name: string }[]; pid?: number }[] }) => g.gpulets)
        .find((l: { functions: unknown[] }) => l.functions.length > 1) as
          | { functions: { name: string }[]; pid?: number }
          | undefined;
    };
    const before = await shared();
    assert.ok(before?.pid, "the plan time-shares a gpu-let");
    const names = before.functions.map((f) => f.name);
    const plan = await (await fetch(`${server.url}/admin/plan`)).json();
    const pids = plan.gpus.flatMap((g: { gpulets: { pid: number }[] }) => g.gpulets.map((l) => l.pid));
    // Gpu-lets the later plans replaced finish stopping in the background.
    const expected = JSON.stringify([...pids].sort((a, b) => a - b));
    await waitFor(`worker processes ${expected}`, () => JSON.stringify(gpuletChildren(Deno.pid)) === expected, 10_000);
    for (const name of names) assert.equal(await inferZeros(server.url, name), 200, name);
    Deno.kill(before.pid, "SIGKILL");
    await waitFor("the time-shared gpu-let restarted", async () => {
      const now = await shared();
      return now?.pid !== undefined && now.pid !== before.pid;
    });
    for (const name of names) assert.equal(await inferZeros(server.url, name), 200, `${name} after the restart`);
  } finally {
    await server.shutdown();
  }
});
