/**
 * `deno task start` and its gRPC port: `--grpc-port 0` picks one and prints it; a port that is taken, or a
 * flag that is no port, exits 2 with one line that says how to fix it.
 */
import assert from "node:assert/strict";
import { ROOT, startCli } from "../helpers.ts";
import { grpcCalls } from "./python_client.ts";

async function startFails(args: string[]): Promise<{ code: number; stderr: string }> {
  const state = await Deno.makeTempDir({ prefix: "gpulet-test-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/src/cli/start.ts`, "--port", "0", "--state", state, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("start --grpc-port 0 prints the gRPC port, and it answers", async () => {
  const state = await Deno.makeTempDir({ prefix: "gpulet-test-" });
  const cli = await startCli(["--state", state, "--grpc-port", "0"]);
  try {
    const port = Number(cli.output().match(/gRPC on 127\.0\.0\.1:([0-9]+)/)?.[1]);
    assert.ok(port > 0, cli.output());
    const [live] = await grpcCalls(port, [{ method: "ServerLive" }]);
    assert.deepEqual(live, { ok: true, response: { live: true } });
  } finally {
    cli.child.kill("SIGTERM");
    await cli.child.status;
    await cli.done;
  }
});

Deno.test("start with the gRPC port taken, or not a port: exit 2 and how to fix it", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const r = await startFails(["--grpc-port", String((taken.addr as Deno.NetAddr).port)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /gRPC cannot listen on 127\.0\.0\.1:[0-9]+: .*--grpc-port off/);
  } finally {
    taken.close();
  }
  const bad = await startFails(["--grpc-port", "lots"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--grpc-port lots: expected a port number \(0 picks one\) or off/);
});
