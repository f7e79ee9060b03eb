/**
 * Reliability: the controller process dies (SIGKILL) or is restarted. Its workers do not outlive it, and a
 * restart on the same state brings every function back, at its version and warm, before it says ready.
 */
import assert from "node:assert/strict";
import { deploy, freePort, metric, processAlive, ROOT, startCli, testImage, waitFor, workerPids } from "../helpers.ts";

Deno.test("SIGKILL of the controller: workers exit within seconds; a restart restores functions and versions, warm before ready", async () => {
  const state = await Deno.makeTempDir({ prefix: "gpulet-restart-" });
  const first = await startCli(["--state", state]);
  await deploy({ url: first.url } as never, `${ROOT}/functions/lenet`);
  await deploy({ url: first.url } as never, `${ROOT}/functions/lenet`);
  await deploy({ url: first.url } as never, `${ROOT}/tests/fixtures/functions/slow`);
  const pids = await workerPids(first.url);
  assert.equal(pids.length, 2);

  // A crash: no draining, no goodbye. The workers notice their control socket closing.
  first.child.kill("SIGKILL");
  await first.child.status;
  await first.done;
  const orphanMs = await waitFor("the workers of a killed controller to exit", () => !pids.some(processAlive), 10_000);
  assert.ok(orphanMs < 5_000, `workers outlived the controller by ${orphanMs.toFixed(0)} ms`);

  // Restart on the same state, watching health and the function endpoint from the first moment.
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const seen: { ready: number; invoke: number; retryAfter: string | null }[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      try {
        const ready = await fetch(`${base}/v2/health/ready`);
        await ready.body?.cancel();
        const invoke = await fetch(`${base}/functions/lenet/invoke`, {
          method: "POST",
          body: JSON.stringify({ image: testImage(1) }),
        });
        await invoke.body?.cancel();
        seen.push({ ready: ready.status, invoke: invoke.status, retryAfter: invoke.headers.get("retry-after") });
        if (ready.status === 200) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const second = await startCli(["--state", state], port);
  try {
    await waitFor("ready", () => seen.at(-1)?.ready === 200, 30_000);
    watching = false;
    await watcher;
    assert.ok(seen.some((s) => s.ready === 503), `ready said 503 while restoring: ${JSON.stringify(seen)}`);
    // Before ready, a request is told to come back (503 + Retry-After), never "unknown function".
    for (const s of seen.filter((s) => s.invoke !== 200)) {
      assert.equal(s.invoke, 503, JSON.stringify(seen));
      assert.equal(s.retryAfter, "1");
    }

    const list = await (await fetch(`${base}/admin/functions`)).json();
    assert.deepEqual(
      list.functions.map((f: { name: string; version: number; ready: boolean }) => [f.name, f.version, f.ready]),
      [["lenet", 2, true], ["slow", 1, true]],
    );
    assert.equal((await fetch(`${base}/v2/models/lenet/versions/2/ready`)).status, 200);
    const old = await fetch(`${base}/v2/models/lenet/versions/1/ready`);
    assert.equal(old.status, 404);
    assert.match((await old.json()).error, /no live version "1" \(live: 2\)/);

    // Warm: the first requests after ready meet their deadline, by the platform's own account (a busy test
    // machine adds client-side time that says nothing about the gpu-let).
    const within = () => metric(base, 'gpulet_requests_within_slo_total{function="lenet"}');
    const withinBefore = await within();
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${base}/functions/lenet/invoke`, {
        method: "POST",
        body: JSON.stringify({ image: testImage(i) }),
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).logits.length, 10);
    }
    assert.equal(await within() - withinBefore, 5, "the first requests after restart met their SLO");
    const newPids = await workerPids(base);
    assert.equal(newPids.length, 2);
    assert.ok(newPids.every((p) => !pids.includes(p)));

    second.child.kill("SIGTERM");
    assert.equal((await second.child.status).code, 0, second.output());
    await second.done;
    await waitFor("no orphans after SIGTERM", () => !newPids.some(processAlive), 5_000);
  } finally {
    try {
      second.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
});
