/**
 * Security: untrusted function code stays inside its folder and its socket; the admin API takes a bearer
 * token (made by default when listening beyond loopback); size limits are configurable from the command line.
 */
import assert from "node:assert/strict";
import { deploy, postJson, ROOT, startCli, startTestServer, testImage, waitFor } from "../helpers.ts";

Deno.test("function code that tries to read, write, connect, listen, read the environment, spawn or load a library fails inside the worker", async () => {
  const server = await startTestServer();
  const state = server.stateDir;
  const url = `${server.url}/functions/escape/invoke`;
  try {
    await deploy(server, `${ROOT}/functions/lenet`);
    await deploy(server, `${ROOT}/tests/fixtures/functions/escape`);
    const own = `${state}/functions/escape/v1/function.ts`;
    const ownBefore = await Deno.readTextFile(own);
    const outside = `/tmp/gpulet-escape-${crypto.randomUUID()}`;

    const attempts: [string, string, string][] = [
      ["read", "/etc/hostname", "read"],
      ["read", "/proc/self/environ", "read"],
      ["read", `${state}/registry.sqlite3`, "read"],
      ["read", `${state}/functions/lenet/v1/function.ts`, "read"],
      ["read", `${ROOT}/deno.json`, "read"],
      ["write", own, "write"],
      ["write", outside, "write"],
      ["net", `${server.url}/admin/functions`, "net"],
      ["connect", String(server.port), "net"],
      ["listen", "", "net"],
      ["env", "", "env"],
      ["run", "", "run"],
      ["ffi", "", "ffi"],
      ["sys", "", "sys"],
    ];
    for (const [attempt, path, permission] of attempts) {
      const r = await postJson(url, { attempt, path });
      const what = `${attempt} ${path}`;
      assert.equal(r.status, 400, `${what} was allowed: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.escaped, undefined, what);
      assert.match(r.body.error, /preprocess rejected the input: /, what);
      assert.match(r.body.error, new RegExp(`Requires ${permission} access`), `${what}: ${r.body.error}`);
    }
    assert.equal(await Deno.readTextFile(own), ownBefore, "its own code is read-only");
    await assert.rejects(Deno.stat(outside), Deno.errors.NotFound);

    // It may read its own folder, and it keeps serving after every refusal.
    const ownRead = await postJson(url, { attempt: "read", path: own });
    assert.equal(ownRead.status, 200, JSON.stringify(ownRead.body));
    const none = await postJson(url, { attempt: "none" });
    assert.deepEqual([none.status, none.body.escaped], [200, false]);
    assert.equal((await postJson(`${server.url}/functions/lenet/invoke`, { image: testImage(1) })).status, 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("beyond loopback `deno task start` makes an admin token; limits come from flags; a bad flag exits 2", async () => {
  const state = await Deno.makeTempDir({ prefix: "gpulet-security-" });
  const cli = await startCli([
    "--state",
    state,
    "--host",
    "0.0.0.0",
    "--max-body-bytes",
    "2048",
    "--max-tensor-elements",
    "100",
  ]);
  try {
    const tokenFile = `${state}/admin-token`;
    // The notice follows the "listening" line start waits for.
    await waitFor("the token notice", () => cli.output().includes("admin API needs a bearer token"), 5_000);
    assert.match(cli.output(), new RegExp(`admin API needs a bearer token .*it is in ${tokenFile}`));
    assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600, "only its owner can read the token");
    const token = (await Deno.readTextFile(tokenFile)).trim();
    assert.ok(token.length >= 32);

    for (const authorization of [undefined, "Bearer wrong", `Basic ${token}`, token]) {
      const res = await fetch(`${cli.url}/admin/functions`, { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="gpulet admin"');
      assert.match((await res.json()).error, /needs `Authorization: Bearer <token>`/);
    }
    const deleted = await fetch(`${cli.url}/admin/functions/lenet`, { method: "DELETE" });
    assert.equal(deleted.status, 401);
    await deleted.body?.cancel();
    await deploy({ url: cli.url } as never, `${ROOT}/functions/lenet`, token);
    const listed = await fetch(`${cli.url}/admin/functions`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(listed.status, 200);
    await listed.body?.cancel();

    // The data plane needs no token; its limits are the ones given.
    const big = await postJson(`${cli.url}/functions/lenet/invoke`, { image: testImage(1) });
    assert.equal(big.status, 413);
    assert.match(big.body.error, /larger than the limit of 2048 bytes/);
    const many = await postJson(`${cli.url}/v2/models/lenet/infer`, {
      inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], parameters: { binary_data_size: 3136 } }],
    });
    assert.equal(many.status, 400);
    assert.match(many.body.error, /784 elements is more than the limit of 100/);
  } finally {
    cli.child.kill("SIGTERM");
    await cli.child.status;
    await cli.done;
  }

  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/src/cli/start.ts`, "--max-body-bytes", "lots"],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--max-body-bytes lots: expected a whole number ≥ 1/);
});
