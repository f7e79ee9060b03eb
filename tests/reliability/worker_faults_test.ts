/**
 * Reliability: worker faults. A gpu-let killed with SIGKILL under load or hung past the bound costs no request
 * its answer (retried once on another gpu-let of the function), is respawned warm, and the function is ready
 * again within seconds. A function whose runtime crashes while loading is refused at deploy, never served.
 */
import assert from "node:assert/strict";
import {
  deploy,
  metric,
  postJson,
  processAlive,
  rawBundle,
  ROOT,
  startTestServer,
  testImage,
  waitFor,
  workerPids,
} from "../helpers.ts";

/** Sends `n` requests to `slow`, one every `gapMs`, each holding its gpu-let `delayMs`; resolves with all answers. */
async function paced(url: string, fn: string, n: number, gapMs: number, delayMs: number) {
  const answers: Promise<{ status: number; body: { value?: number; error?: string } }>[] = [];
  for (let i = 0; i < n; i++) {
    answers.push(postJson(`${url}/functions/${fn}/invoke`, { delayMs, value: i }));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return await Promise.all(answers);
}

Deno.test("kill -9 of one of two gpu-lets under load: every request answered 200, respawned within seconds", async () => {
  const server = await startTestServer({ gpuletsPerFunction: 2 });
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
    const before = await workerPids(server.url);
    assert.equal(before.length, 2, "two gpu-lets serve the function");
    // 25 ms each, one every 10 ms: both gpu-lets are always busy, so the kill hits a batch in flight.
    const load = paced(server.url, "slow", 60, 10, 25);
    await new Promise((r) => setTimeout(r, 250));
    const killedAt = performance.now();
    Deno.kill(before[0], "SIGKILL");
    const answers = await load;
    // Exactly one answer each, all of them good: the lost batch was run again on the surviving gpu-let.
    assert.equal(answers.length, 60);
    assert.deepEqual(answers.map((a) => a.status), new Array(60).fill(200), JSON.stringify(answers.map((a) => a.body)));
    assert.deepEqual(answers.map((a) => a.body.value), Array.from({ length: 60 }, (_, i) => i));
    const recoveredMs = await waitFor("the killed gpu-let to be respawned", async () => {
      const pids = await workerPids(server.url);
      return pids.length === 2 && !pids.includes(before[0]);
    }) + (performance.now() - killedAt);
    assert.equal(processAlive(before[0]), false);
    assert.ok(recoveredMs < 15_000, `respawned and warm after ${recoveredMs.toFixed(0)} ms`);
    assert.equal(await metric(server.url, 'gpulet_worker_restarts_total{function="slow"}'), 1);
    assert.equal(await metric(server.url, 'gpulet_requests_total{function="slow",code="503"}'), 0);
    assert.ok(await metric(server.url, 'gpulet_retries_total{function="slow"}') >= 1, "the lost batch was retried");
    const after = await postJson(`${server.url}/functions/slow/invoke`, { delayMs: 0, value: 7 });
    assert.equal(after.status, 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a hung gpu-let is killed after the hang bound, its request answered, and it is respawned", async () => {
  const server = await startTestServer({ hangTimeoutMs: 1500 });
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/sleepy`);
    const [pid] = await workerPids(server.url);
    const t0 = performance.now();
    const stuck = await postJson(`${server.url}/functions/sleepy/invoke`, { delayMs: 0, value: 1, hang: true });
    const tookMs = performance.now() - t0;
    // One gpu-let: nowhere to retry, so the request gets an error rather than waiting forever.
    assert.equal(stuck.status, 503);
    assert.match(stuck.body.error, /gave no answer in 1500 ms and was killed/);
    assert.ok(tookMs >= 1400 && tookMs < 5000, `answered after ${tookMs.toFixed(0)} ms`);
    await waitFor("the hung worker to exit", () => !processAlive(pid), 5000);
    await waitFor("a respawned worker", async () => {
      const pids = await workerPids(server.url);
      return pids.length === 1 && pids[0] !== pid;
    });
    const ok = await postJson(`${server.url}/functions/sleepy/invoke`, { delayMs: 0, value: 2 });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.value, 2);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a function whose runtime crashes while loading or warming is refused at deploy and never served", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    const crashes: [string, string, RegExp][] = [
      // The process dies before it ever connects (as a native abort would).
      ["crashload", `Deno.exit(134);\n`, /cannot be served \(load\): worker exited with code 134 while loading/],
      // It dies in the middle of warm-up, on the example input.
      [
        "crashwarm",
        `import { defineFunction, tensor, z } from "gpulet";\n` +
        `export default defineFunction({ model: "lenet", sloMs: 1000, maxBatch: 4, input: z.object({ x: z.number() }),\n` +
        `  example: { x: 1 }, preprocess: () => { Deno.exit(139); return { input: tensor("float32", new Float32Array(784), [1, 1, 28, 28]) }; },\n` +
        `  postprocess: () => ({}) });\n`,
        /cannot be served \(load\): worker exited with code 139 while loading/,
      ],
    ];
    for (const [name, source, re] of crashes) {
      const r = await postJson(`${server.url}/admin/functions`, rawBundle(name, source));
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, re);
      assert.equal((await fetch(`${server.url}/v2/models/${name}`)).status, 404);
      const inv = await postJson(`${server.url}/functions/${name}/invoke`, { x: 1 });
      assert.equal(inv.status, 404);
    }
    const list = await (await fetch(`${server.url}/admin/functions`)).json();
    assert.deepEqual(list.functions.map((f: { name: string }) => f.name), ["lenet"]);
    assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200, "the crashed deploys left no trace");
    assert.equal((await postJson(`${server.url}/functions/lenet/invoke`, { image: testImage(1) })).status, 200);
  } finally {
    await server.shutdown();
  }
});
