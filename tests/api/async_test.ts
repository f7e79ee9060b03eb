/**
 * Integration: async invocations on one node. A call is accepted at once (202 + id), runs in the gaps
 * synchronous traffic leaves, its result is kept and posted to its callback; bad calls get a clear answer;
 * calls left at a shutdown run after the restart, each once.
 */
import assert from "node:assert/strict";
import { deploy, freePort, metric, postJson, ROOT, startTestServer, waitFor } from "../helpers.ts";

const SLOW = `${ROOT}/tests/fixtures/functions/slow`;

/** Submits an async call; returns the answer's status, body and headers. */
async function submit(url: string, fn: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/async-functions/${fn}/invoke`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** Polls a call's result until it is finished. */
async function finished(url: string, fn: string, id: string, timeoutMs = 20_000) {
  let last: { status: number; body: Record<string, unknown> } | undefined;
  await waitFor(`async call ${id} to finish`, async () => {
    const res = await fetch(`${url}/async-functions/${fn}/results/${id}`);
    last = { status: res.status, body: await res.json() };
    return res.status === 200;
  }, timeoutMs);
  return last!.body;
}

Deno.test("async: 202 with an id at once, the result later equals a sync invoke's, posted to the callback", async () => {
  const posted: { headers: Headers; body: unknown }[] = [];
  const port = freePort();
  const callbacks = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    posted.push({ headers: req.headers, body: await req.json() });
    return new Response("ok");
  });
  const server = await startTestServer();
  try {
    await deploy(server, SLOW);
    const sync = await postJson(`${server.url}/functions/slow/invoke`, { delayMs: 0, value: 7 });
    assert.equal(sync.status, 200);
    const a = await submit(server.url, "slow", { delayMs: 0, value: 7 }, {
      "x-callback-url": `http://127.0.0.1:${port}/done`,
    });
    assert.equal(a.status, 202, JSON.stringify(a.body));
    assert.equal(a.body.status, "queued");
    assert.equal(a.headers.get("x-call-id"), a.body.id);
    assert.equal(a.headers.get("location"), `/async-functions/slow/results/${a.body.id}`);
    const done = await finished(server.url, "slow", a.body.id);
    assert.equal(done.status, "succeeded");
    assert.equal(done.code, 200);
    assert.equal(done.tries, 1);
    assert.deepEqual(done.output, sync.body, "the same answer as a sync invoke");
    await waitFor("the callback", () => posted.length === 1, 5000);
    assert.equal(posted[0].headers.get("x-call-id"), a.body.id);
    assert.equal(posted[0].headers.get("x-function-status"), "200");
    assert.deepEqual(posted[0].body, sync.body);
    await waitFor("the callback's outcome to be recorded", async () => {
      const r = await (await fetch(`${server.url}/async-functions/slow/results/${a.body.id}`)).json();
      return r.callback?.code === 200;
    }, 5000);
  } finally {
    await server.shutdown();
    await callbacks.shutdown();
  }
});

Deno.test("async: bad calls are answered clearly, at submit or in the result", async () => {
  const server = await startTestServer();
  try {
    await deploy(server, SLOW);
    const unknown = await submit(server.url, "nope", { x: 1 });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error, /nope/);
    const empty = await submit(server.url, "slow", "");
    assert.equal(empty.status, 400);
    const badUrl = await submit(server.url, "slow", { delayMs: 0, value: 1 }, {
      "x-callback-url": "file:///etc/passwd",
    });
    assert.equal(badUrl.status, 400);
    assert.match(badUrl.body.error, /X-Callback-Url/);
    // Invalid for the function's schema: accepted (the gpu-let validates), failed at once, not retried.
    const invalid = await submit(server.url, "slow", { delayMs: "soon" });
    assert.equal(invalid.status, 202);
    const failed = await finished(server.url, "slow", invalid.body.id);
    assert.equal(failed.status, "failed");
    assert.equal(failed.code, 400);
    assert.equal(failed.tries, 1);
    assert.match(String(failed.error), /delayMs/);
    const notId = await fetch(`${server.url}/async-functions/slow/results/not-a-uuid`);
    assert.equal(notId.status, 400);
    await notId.body?.cancel();
    const missing = await fetch(`${server.url}/async-functions/slow/results/${crypto.randomUUID()}`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    // One Idempotency-Key, one call.
    const k1 = await submit(server.url, "slow", { delayMs: 0, value: 2 }, { "idempotency-key": "order-17" });
    const k2 = await submit(server.url, "slow", { delayMs: 0, value: 2 }, { "idempotency-key": "order-17" });
    assert.equal(k1.status, 202);
    assert.equal(k2.body.id, k1.body.id);
  } finally {
    await server.shutdown();
  }
});

Deno.test("async: calls wait for the gap synchronous requests leave, and none is lost or run twice across a restart", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "gpulet-async-" });
  let server = await startTestServer({ stateDir, gpuletsPerFunction: 1 });
  const ids: string[] = [];
  try {
    await deploy(server, SLOW);
    const fn = `${server.url}/functions/slow/invoke`;
    const sync = [1, 2, 3].map((value) => postJson(fn, { delayMs: 600, value }));
    await waitFor(
      "sync requests to queue",
      async () => (await metric(server.url, 'gpulet_queue_depth{function="slow"}')) >= 1,
      5000,
    );
    for (let i = 0; i < 6; i++) ids.push((await submit(server.url, "slow", { delayMs: 200, value: 100 + i })).body.id);
    const early = await (await fetch(`${server.url}/async-functions/slow/results/${ids[0]}`)).json();
    assert.equal(early.status, "queued", "an async call waits while sync requests are queued");
    for (const s of sync) assert.equal((await s).status, 200, "sync requests are not held up");
    // Stop before all have run: those running finish, the rest stay queued.
    await server.shutdown();
    const lines: string[] = [];
    server = await startTestServer({ stateDir, gpuletsPerFunction: 1, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /async: [1-6] unfinished call\(s\) queued again/.test(l)), lines.join("\n"));
    const results = [];
    for (const id of ids) results.push(await finished(server.url, "slow", id));
    assert.deepEqual(results.map((r) => r.status), ids.map(() => "succeeded"));
    assert.deepEqual(results.map((r) => (r.output as { value: number }).value), [100, 101, 102, 103, 104, 105]);
    assert.ok(results.every((r) => r.tries === 1), `each ran once: ${results.map((r) => r.tries)}`);
  } finally {
    await server.shutdown();
  }
});
