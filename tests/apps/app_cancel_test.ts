/**
 * Integration: an app request whose client goes away is answered 499 at once, and its stage call that has
 * not run leaves the stage's queue: no worker time is spent on it, and the app's later stages never run.
 */
import assert from "node:assert/strict";
import { makeFunctionFolder } from "../fixtures/function_folders.ts";
import { deploy, metric, postJson, queueDepth, ROOT, startTestServer, waitFor, waitForHeld } from "../helpers.ts";

/** Two stages in a row over `slow` (a preprocess that takes `delayMs` of CPU). */
const PATIENT_APP = `import { defineApp, z } from "gpulet";
export default defineApp({
  sloMs: 20000,
  input: z.object({ delayMs: z.number() }),
  stages: { first: { function: "slow" }, second: { function: "slow", after: ["first"] } },
  run: async ({ delayMs }, ctx) => {
    await ctx.call("first", { delayMs, value: 1 });
    await ctx.call("second", { delayMs, value: 2 });
    return { done: true };
  },
});
`;

Deno.test("an app request whose client goes away: 499, its queued stage call dropped, later stages never run", async () => {
  // One fixed gpu-let for slow: planned, the app's stage demand may give it two, and nothing would queue.
  const server = await startTestServer({ gpuletsPerFunction: 1 });
  try {
    await deploy(server, `${ROOT}/tests/fixtures/functions/slow`);
    await deploy(server, await makeFunctionFolder("patient", PATIENT_APP));
    const fn = `${server.url}/functions/slow/invoke`;
    const ok = await postJson(`${server.url}/functions/patient/invoke`, { delayMs: 0 });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const ran = () => metric(server.url, 'gpulet_batch_requests_total{function="slow"}');
    const ranBefore = await ran();
    // Three long direct requests keep the one gpu-let busy for ~6 s: one or two are sent to it, the rest wait.
    const long = [-1, -2, -3].map((value) => postJson(fn, { delayMs: 2000, value }));
    const queued = await waitForHeld(server.url, "slow", 3);
    assert.ok(queued >= 1, `${queued} of the long requests queued`);
    const client = new AbortController();
    const gone = fetch(`${server.url}/functions/patient/invoke`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ delayMs: 0 }),
      signal: client.signal,
    }).then(() => "answered", (e) => (e as Error).name);
    await waitFor(
      "the app's first stage call to be queued",
      async () => (await queueDepth(server.url, "slow")) === queued + 1,
      2000,
    );
    client.abort();
    assert.equal(await gone, "AbortError");
    await waitFor(
      "the stage call to leave the queue",
      async () => (await queueDepth(server.url, "slow")) <= queued,
      2000,
    );
    for (const l of long) assert.equal((await l).status, 200);
    assert.equal(await ran(), ranBefore + 3, "only the long requests went through the model");
    assert.equal(await metric(server.url, 'gpulet_requests_total{function="patient",code="499"}'), 1);
    assert.equal(await metric(server.url, 'gpulet_requests_total{function="slow",code="499"}'), 1);
  } finally {
    await server.shutdown();
  }
});
