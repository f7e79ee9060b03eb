/**
 * Integration: async calls on a JetStream work queue (a real nats-server): a node that dies in the middle of
 * a call never acks it, so JetStream gives it to another node after `ack_wait`, which runs it; the call ends
 * once, with its second try recorded.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { startLocalNats } from "../../scripts/nats_local.ts";
import { JetStreamCalls } from "../../src/cluster/jetstream_calls.ts";
import { ROOT, waitFor } from "../helpers.ts";

Deno.test("JetStream async: a call whose node dies mid-run is run again by another node, and ends once", async () => {
  const nats = await startLocalNats(1);
  const dying = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tests/fixtures/cluster/dying_async_node.ts`, nats.servers[0].url],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const nc = await connect({ servers: nats.servers[0].url });
  let runs = 0;
  const survivor = await JetStreamCalls.open(nc, {
    node: "survivor",
    replicas: 1,
    ackWaitMs: 1000,
    hasGap: () => true,
    run: () => {
      runs++;
      return Promise.resolve({ code: 200, json: new TextEncoder().encode('{"ok":true}') });
    },
  });
  try {
    const out = dying.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let printed = "";
    const readUntil = async (what: string) => {
      while (!printed.includes(what)) {
        const { value, done } = await out.read();
        if (done) throw new Error(`the dying node ended early: ${printed}`);
        printed += value;
      }
    };
    await readUntil("ready");
    const call = await survivor.submit("f", new TextEncoder().encode('{"x":1}'));
    assert.equal(call.status, "queued");
    await readUntil("running f");
    assert.equal((await survivor.get("f", call.id))?.status, "running");
    dying.kill("SIGKILL");
    await dying.status;
    await out.cancel();
    await survivor.start();
    await waitFor(
      "the call to end on the survivor",
      async () => (await survivor.get("f", call.id))?.status === "succeeded",
      10_000,
    );
    const done = (await survivor.get("f", call.id))!;
    assert.equal(done.node, "survivor");
    assert.equal(done.tries, 2, "its second delivery ran it");
    assert.equal(runs, 1);
    assert.equal(new TextDecoder().decode(await survivor.output(call.id)), '{"ok":true}');
    // The same call id again (a duplicate delivery) runs nothing.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(runs, 1);
  } finally {
    await survivor.close();
    await nc.close();
    await nats.stop();
  }
});
