/**
 * Integration: the model repository API over HTTP (Triton's extension). The index lists what is registered
 * with its state; unload stops a function but keeps its bundle, also across a restart; load brings the same
 * version back; the admin token guards all three; names are validated.
 */
import assert from "node:assert/strict";
import { deploy, modelFunctionFolder, postJson, startTestServer, testImage } from "../helpers.ts";

const TOKEN = "repo-test-token";

async function post(url: string, body?: unknown, token: string | null = TOKEN) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("repository API: index, unload keeps the bundle (also across a restart), load brings it back", async () => {
  let server = await startTestServer({ adminToken: TOKEN });
  const stateDir = server.stateDir;
  const infer = (s: typeof server) =>
    postJson(`${s.url}/v2/models/lenet/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: testImage(1) }],
    });
  try {
    await deploy(server, await modelFunctionFolder("lenet", "lenet", 5000), TOKEN);
    await deploy(server, await modelFunctionFolder("mnist", "lenet", 5000), TOKEN);
    const base = `${server.url}/v2/repository`;

    for (const path of ["index", "models/lenet/unload", "models/lenet/load"]) {
      assert.equal((await post(`${base}/${path}`, {}, null)).status, 401, `${path}: the admin token is required`);
    }
    assert.deepEqual((await post(`${base}/index`)).body, [
      { name: "lenet", version: "1", state: "READY", reason: "" },
      { name: "mnist", version: "1", state: "READY", reason: "" },
    ]);

    assert.deepEqual((await post(`${base}/models/lenet/unload`)).body, { name: "lenet", state: "UNAVAILABLE" });
    assert.equal((await infer(server)).status, 404, "an unloaded function is not served");
    assert.deepEqual((await post(`${base}/index`, { ready: true })).body.map((m: { name: string }) => m.name), [
      "mnist",
    ]);
    assert.equal((await post(`${base}/models/lenet/unload`)).status, 404, "unloading twice");

    // A restart keeps it unloaded, and registered.
    await server.shutdown();
    server = await startTestServer({ adminToken: TOKEN, stateDir });
    const again = `${server.url}/v2/repository`;
    assert.deepEqual((await post(`${again}/index`)).body[0], {
      name: "lenet",
      version: "1",
      state: "UNAVAILABLE",
      reason: "unloaded",
    });
    assert.deepEqual((await post(`${again}/models/lenet/load`)).body, {
      name: "lenet",
      version: "1",
      state: "READY",
      reason: "",
    });
    const answer = await infer(server);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.model_version, "1", "the same version came back");
    assert.equal((await post(`${again}/models/lenet/load`)).status, 200, "loading a live function is a no-op");

    const unknown = await post(`${again}/models/nosuch/load`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error, /"nosuch" is not registered: deploy it first/);
    const bad = await post(`${again}/models/Bad..Name/load`);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /invalid function name/);

    // An unloaded function can be removed for good: its bundle goes, and load no longer finds it.
    assert.equal((await post(`${again}/models/mnist/unload`)).status, 200);
    const removed = await fetch(`${server.url}/admin/functions/mnist`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.deepEqual(await removed.json(), { removed: "mnist" });
    assert.equal((await post(`${again}/models/mnist/load`)).status, 404);
    assert.deepEqual((await post(`${again}/index`)).body.map((m: { name: string }) => m.name), ["lenet"]);
  } finally {
    await server.shutdown();
  }
});
