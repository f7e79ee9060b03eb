/**
 * Integration: a gpulet cluster on NATS JetStream, all on loopback: 3 `nats-server` processes and 3 gpulet
 * nodes (real `deno task start --cluster` processes on simulated GPUs). Deploy once, serve anywhere; then
 * faults under load: a node killed with SIGKILL, the leader frozen with SIGSTOP, a NATS server killed.
 * Each time every request sent gets exactly one answer (200, or a clear 503/504 for the few the dead node
 * had taken) and the functions are served again by the survivors within seconds.
 */
import assert from "node:assert/strict";
import { type LocalNats, startLocalNats } from "../../scripts/nats_local.ts";
import { deployFolder } from "../../src/api/admin_client.ts";
import { metric, modelFunctionFolder, ROOT, startCli, type StartedCli, waitFor } from "../helpers.ts";
import { grpcCalls } from "../grpc/python_client.ts";

/** Simulated time runs this many times slower than profile time, so this machine can drive 3 nodes. */
const SIM_SCALE = 20;
const NODES = ["a", "b", "c"];

interface Node extends StartedCli {
  name: string;
  stateDir: string;
  /** Its gRPC port (0: none). */
  grpcPort: number;
}

async function startNode(name: string, nats: LocalNats, stateDir?: string): Promise<Node> {
  const dir = stateDir ?? await Deno.makeTempDir({ prefix: `gpulet-node-${name}-` });
  // Node c serves gRPC too (on a free port), to show a gRPC call routed like an HTTP one.
  const cli = await startCli([
    "--cluster",
    nats.clusterFlag,
    "--node",
    name,
    "--devices",
    "sim:h100x4",
    "--sim-scale",
    String(SIM_SCALE),
    "--grpc-port",
    name === "c" ? "0" : "off",
    "--state",
    dir,
    // A node killed with an async call in hand: it goes to another node after 3 s, not the default 30.
    "--async-ack-wait-ms",
    "3000",
  ]);
  const grpcPort = Number(cli.output().match(/gRPC on [0-9.]+:([0-9]+)/)?.[1] ?? 0);
  return { ...cli, name, stateDir: dir, grpcPort };
}

async function stopNode(n: Node): Promise<void> {
  try {
    n.child.kill("SIGTERM");
  } catch {
    // gone already
  }
  await n.child.status;
  await n.done.catch(() => {});
}

const INFER = JSON.stringify({
  inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: new Array(784).fill(0) }],
});

async function infer(url: string, fn = "lenet"): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/v2/models/${fn}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: INFER,
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: await res.json() };
}

async function cluster(url: string) {
  return await (await fetch(`${url}/admin/cluster`)).json();
}

/** Open-loop load on `targets` (round robin) at `rate`/s until stopped: every request's status, in order. */
function load(targets: () => string[], rate: number) {
  const answers: { at: number; status: number; error?: string }[] = [];
  const inflight = new Set<Promise<void>>();
  let stopped = false;
  let i = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    if (stopped) return;
    const urls = targets();
    const url = urls[i++ % urls.length];
    const p = infer(url).then(
      (r) => void answers.push({ at: performance.now() - t0, status: r.status, error: r.body.error as string }),
      (e) => void answers.push({ at: performance.now() - t0, status: 0, error: (e as Error).message }),
    );
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  }, 1000 / rate);
  return {
    answers,
    sent: () => i,
    since: (ms: number) => answers.filter((a) => a.at >= ms),
    elapsed: () => performance.now() - t0,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inflight]);
      return answers;
    },
  };
}

/** Callbacks received, per call id. */
const callbacks = new Map<string, number>();
let callbackUrl = "";

/** Submits an async call of `slow` (a JSON function; on simulated GPUs its answer is the simulated one). */
async function submitAsync(url: string, key?: string): Promise<{ id: string }> {
  const res = await fetch(`${url}/async-functions/slow/invoke`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-callback-url": callbackUrl,
      ...(key ? { "idempotency-key": key } : {}),
    },
    body: JSON.stringify({ delayMs: 20, value: 1 }),
  });
  const body = await res.json();
  assert.equal(res.status, 202, JSON.stringify(body));
  return body;
}

async function asyncResult(url: string, id: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  let out: Record<string, unknown> = {};
  try {
    await waitFor(`async call ${id}`, async () => {
      const res = await fetch(`${url}/async-functions/slow/results/${id}`);
      out = await res.json();
      return res.status === 200;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(out)}`);
  }
  return out;
}

Deno.test("cluster: deploy once, serve from any node; SIGKILL, SIGSTOP and a dead NATS server lose no request", async (t) => {
  const nats = await startLocalNats(3);
  const nodes: Node[] = [];
  const hooks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const id = req.headers.get("x-call-id") ?? "";
    callbacks.set(id, (callbacks.get(id) ?? 0) + 1);
    return new Response("ok");
  });
  callbackUrl = `http://127.0.0.1:${hooks.addr.port}/done`;
  try {
    for (const name of NODES) nodes.push(await startNode(name, nats));
    const [a, b, c] = nodes;
    await waitFor("every node to see three live nodes and one leader", async () => {
      const views = await Promise.all(nodes.map((n) => cluster(n.url)));
      const leaders = new Set(views.map((v) => v.leader?.node));
      return views.every((v) => v.nodes.filter((x: { alive: boolean }) => x.alive).length === 3) &&
        leaders.size === 1 && !leaders.has(undefined);
    }, 15_000);

    await t.step("a deploy on one node reaches every node, with one version number", async () => {
      await deployFolder(a.url, await modelFunctionFolder("lenet", "lenet", 2));
      await deployFolder(a.url, `${ROOT}/tests/fixtures/functions/slow`);
      await waitFor("lenet ready on every node", async () => {
        const views = await Promise.all(nodes.map((n) => cluster(n.url)));
        return views[0].nodes.every((x: { ready: string[] }) => x.ready.includes("lenet") && x.ready.includes("slow"));
      }, 20_000);
      for (const n of nodes) {
        const r = await infer(n.url);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.model_version, "1");
      }
      // A second version, from another node: everyone moves to v2.
      await deployFolder(b.url, await modelFunctionFolder("lenet", "lenet", 2));
      await waitFor("v2 everywhere", async () => {
        const rs = await Promise.all(nodes.map((n) => infer(n.url)));
        return rs.every((r) => r.status === 200 && r.body.model_version === "2");
      }, 20_000);
      // A function removed on one node is removed everywhere.
      await deployFolder(c.url, await modelFunctionFolder("lenet2", "lenet", 2));
      await waitFor("lenet2 on a", async () => (await infer(a.url, "lenet2")).status === 200, 20_000);
      const del = await fetch(`${c.url}/admin/functions/lenet2`, { method: "DELETE" });
      assert.equal(del.status, 200);
      await del.body?.cancel();
      await waitFor("lenet2 gone from a", async () => (await infer(a.url, "lenet2")).status === 404, 20_000);
      // Ready = connected, the cluster's functions deployed, routing by the current leader's plan.
      await waitFor("every node ready", async () => {
        const rs = await Promise.all(nodes.map((n) => fetch(`${n.url}/v2/health/ready`).then((r) => r.json())));
        return rs.every((r) =>
          r.ready === true && r.cluster.connected && r.cluster.planEpoch === r.cluster.leaderEpoch
        );
      }, 10_000);
    });

    await t.step("the leader plans the demand of every front door; other nodes forward to its slices", async () => {
      const l = load(() => [b.url, c.url], 60);
      await waitFor("a plan with lenet's demand", async () => {
        const v = await cluster(a.url);
        return (v.plan?.routes?.lenet ?? []).length > 0 && v.plan.demand.lenet > 20;
      }, 15_000);
      const answers = await l.stop();
      assert.deepEqual(answers.filter((x) => x.status !== 200), [], "every request answered 200");
      const v = await cluster(b.url);
      assert.ok(
        v.plan.gpusUsed >= 1 && v.plan.gpusUsed < v.plan.gpusTotal,
        `${v.plan.gpusUsed} of ${v.plan.gpusTotal}`,
      );
      assert.ok(v.history.length >= 1);
      const routed = (await Promise.all([b, c].map((n) => cluster(n.url)))).map((x) => x.routing);
      assert.ok(routed.some((r) => r.forwarded > 0), JSON.stringify(routed));
      // The same in /metrics, with the planned GPUs a KEDA scaler can size the node pool by.
      // (The plan may move on as the demand decays: the figures agree with a plan read beside them.)
      await waitFor("the planned GPUs in /metrics", async () => {
        const plan = (await cluster(b.url)).plan;
        return (await metric(b.url, "gpulet_cluster_gpus_planned")) === plan.gpusUsed;
      }, 5000);
      assert.equal(await metric(b.url, "gpulet_cluster_nodes"), 3);
      const leaders = await Promise.all(nodes.map((n) => metric(n.url, "gpulet_cluster_leader")));
      assert.equal(leaders.reduce((a, x) => a + x, 0), 1, "one leader");
      // And on the dashboard's data.
      const ui = await (await fetch(`${b.url}/ui/state`)).json();
      assert.deepEqual(ui.cluster.nodes.map((n: { name: string }) => n.name), ["a", "b", "c"]);
      assert.equal(ui.cluster.gpusTotal, 12);
      assert.equal(ui.cluster.nodes.filter((n: { leader: boolean }) => n.leader).length, 1);
    });

    await t.step("a gRPC call at any node is routed as an HTTP request is", async () => {
      assert.ok(c.grpcPort > 0);
      const before = (await cluster(c.url)).routing;
      const request = {
        model_name: "lenet",
        inputs: [{ name: "input", datatype: "FP32", shape: [1, 1, 28, 28] }],
        raw_input_contents: [btoa(String.fromCharCode(...new Uint8Array(784 * 4)))],
      };
      const rs = await grpcCalls(c.grpcPort, Array.from({ length: 20 }, () => ({ method: "ModelInfer", request })));
      for (const r of rs) {
        assert.ok(r.ok, JSON.stringify(r));
        assert.equal(r.response.model_name, "lenet");
        assert.equal(r.response.parameters.simulated.bool_param, true);
      }
      const after = (await cluster(c.url)).routing;
      assert.equal(
        after.local + after.forwarded - before.local - before.forwarded,
        20,
        "all 20 went through the front door",
      );
      assert.ok(after.forwarded > before.forwarded, "the plan sends some elsewhere");
      // An unknown model is the same error as on one node.
      const [bad] = await grpcCalls(c.grpcPort, [{
        method: "ModelInfer",
        request: { ...request, model_name: "nope" },
      }]);
      assert.ok(!bad.ok && bad.code === "NOT_FOUND", JSON.stringify(bad));
    });

    await t.step("async calls: taken by any node, results on any node, one call per Idempotency-Key", async () => {
      const sent = await submitAsync(b.url, "k-1");
      const again = await submitAsync(c.url, "k-1");
      assert.equal(again.id, sent.id, "the same key on another node is the same call");
      const done = await asyncResult(a.url, sent.id);
      assert.equal(done.status, "succeeded");
      assert.equal((done.output as { simulated?: boolean }).simulated, true);
    });

    await t.step(
      "SIGKILL of the node the plan routes to: survivors serve again within 3 s, no request lost",
      async () => {
        const plan = (await cluster(nodes[0].url)).plan;
        const victimName = plan.routes.lenet[0].node as string;
        const victim = nodes.find((n) => n.name === victimName)!;
        const survivors = nodes.filter((n) => n !== victim);
        const l = load(() => survivors.map((n) => n.url), 60);
        // Async calls too, run by every node (the victim included) while it dies.
        const calls: string[] = [];
        const submitting = (async () => {
          for (let i = 0; i < 30; i++) {
            calls.push((await submitAsync(survivors[i % 2].url)).id);
            await new Promise((r) => setTimeout(r, 50));
          }
        })();
        await new Promise((r) => setTimeout(r, 1000));
        const killedAt = l.elapsed();
        victim.child.kill("SIGKILL");
        await victim.child.status;
        await new Promise((r) => setTimeout(r, 4000));
        await submitting;
        const answers = await l.stop();
        // Each async call done once: its result succeeded, one callback. A call the victim had taken is run
        // again elsewhere after ack_wait, so the results may take that long.
        const results = await Promise.all(calls.map((id) => asyncResult(survivors[0].url, id, 20_000)));
        assert.deepEqual(results.filter((r) => r.status !== "succeeded"), [], "every async call succeeded");
        await waitFor("one callback per call", () => calls.every((id) => callbacks.has(id)), 10_000);
        assert.deepEqual(calls.filter((id) => callbacks.get(id) !== 1), [], "no call completed twice");
        console.log(
          `SIGKILL: ${calls.length} async calls, ${results.filter((r) => (r.tries as number) > 1).length} run again`,
        );
        assert.equal(answers.length, l.sent(), "every request got an answer");
        const failed = answers.filter((x) => x.status !== 200);
        for (const f of failed) assert.ok([503, 504].includes(f.status) && f.error, JSON.stringify(f));
        console.log(`SIGKILL: ${answers.length} requests, ${failed.length} answered 503/504, the rest 200`);
        assert.ok(failed.length <= 5, `${failed.length} not served: ${JSON.stringify(failed.slice(0, 5))}`);
        const late = answers.filter((x) => x.at >= killedAt + 3000);
        assert.ok(late.length > 50 && late.every((x) => x.status === 200), "served again within 3 s");
        nodes[nodes.indexOf(victim)] = await startNode(victim.name, nats, victim.stateDir);
      },
    );

    await t.step("SIGSTOP of the leader: a new leader within seconds, requests keep being answered", async () => {
      const before = (await cluster(nodes[0].url)).leader; // nodes[] holds the restarted node now
      const frozen = nodes.find((n) => n.name === before.node)!;
      const others = nodes.filter((n) => n !== frozen);
      await waitFor("the restarted node to be ready everywhere", async () => {
        const v = await cluster(others[0].url);
        return v.nodes.filter((x: { alive: boolean; ready: string[] }) => x.alive && x.ready.includes("lenet"))
          .length === 3;
      }, 20_000);
      const l = load(() => others.map((n) => n.url), 40);
      frozen.child.kill("SIGSTOP");
      try {
        const took = await waitFor("another leader", async () => {
          const v = await cluster(others[0].url);
          return v.leader.node !== before.node && v.leader.epoch > before.epoch;
        }, 8000);
        console.log(`SIGSTOP: a new leader after ${took.toFixed(0)} ms`);
        assert.ok(took < 4000, `a new leader took ${took.toFixed(0)} ms`);
      } finally {
        frozen.child.kill("SIGCONT");
      }
      await new Promise((r) => setTimeout(r, 2000));
      const answers = await l.stop();
      assert.equal(answers.length, l.sent());
      const failed = answers.filter((x) => x.status !== 200);
      for (const f of failed) assert.ok([503, 504].includes(f.status) && f.error, JSON.stringify(f));
      assert.ok(failed.length <= 5, `${failed.length} not served: ${JSON.stringify(failed.slice(0, 5))}`);
      // The old leader, back, follows the new one.
      await waitFor("the old leader to follow", async () => {
        const v = await cluster(frozen.url);
        return v.leader.node !== before.node;
      }, 8000);
    });

    await t.step("SIGKILL of the leader: another leads, plans again, and no request is lost", async () => {
      const before = (await cluster(nodes[0].url)).leader;
      const leader = nodes.find((n) => n.name === before.node)!;
      const others = nodes.filter((n) => n !== leader);
      const l = load(() => others.map((n) => n.url), 40);
      await new Promise((r) => setTimeout(r, 500));
      leader.child.kill("SIGKILL");
      await leader.child.status;
      const took = await waitFor("a new leader's plan", async () => {
        const v = await cluster(others[0].url);
        return v.leader.epoch > before.epoch && v.plan?.epoch === v.leader.epoch;
      }, 8000);
      const answers = await l.stop();
      assert.equal(answers.length, l.sent());
      const failed = answers.filter((x) => x.status !== 200);
      for (const f of failed) assert.ok([503, 504].includes(f.status) && f.error, JSON.stringify(f));
      console.log(
        `leader killed: its successor's plan after ${
          took.toFixed(0)
        } ms; ${failed.length} of ${answers.length} not 200`,
      );
      assert.ok(failed.length <= 5, `${failed.length} not served: ${JSON.stringify(failed.slice(0, 5))}`);
      nodes[nodes.indexOf(leader)] = await startNode(leader.name, nats, leader.stateDir);
      await waitFor("the restarted node to be ready", async () => {
        const statuses = await Promise.all(nodes.map(async (n) => {
          const r = await fetch(`${n.url}/v2/health/ready`);
          await r.body?.cancel();
          return r.status;
        }));
        return statuses.every((s) => s === 200);
      }, 20_000);
    });

    await t.step("a NATS server killed: nodes reconnect, requests keep being answered", async () => {
      const l = load(() => nodes.map((n) => n.url), 40);
      await new Promise((r) => setTimeout(r, 500));
      await nats.servers[0].kill();
      await new Promise((r) => setTimeout(r, 3000));
      const answers = await l.stop();
      assert.equal(answers.length, l.sent());
      const failed = answers.filter((x) => x.status !== 200);
      console.log(`NATS server killed: ${answers.length} requests, ${failed.length} not 200`);
      assert.ok(failed.length <= 3, `${failed.length} not served: ${JSON.stringify(failed.slice(0, 5))}`);
      const v = await cluster(nodes[0].url);
      assert.equal(v.nodes.filter((x: { alive: boolean }) => x.alive).length, 3);
    });

    await t.step("with every NATS server gone, SIGTERM still stops each node, in seconds", async () => {
      for (const s of nats.servers) await s.kill();
      const t0 = performance.now();
      await Promise.all(nodes.map(stopNode));
      const took = performance.now() - t0;
      console.log(`stopped without NATS in ${took.toFixed(0)} ms`);
      assert.ok(took < 20_000, `stopping took ${took.toFixed(0)} ms`);
    });
  } finally {
    await Promise.all(nodes.map(stopNode));
    await nats.stop();
    await hooks.shutdown();
  }
});

Deno.test("start --cluster: a bad URL, a bad node name or no NATS there exit 2 with one line that says so", async () => {
  const run = async (...args: string[]) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}/src/cli/start.ts`, "--port", "0", "--grpc-port", "off", ...args],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: r.code, err: new TextDecoder().decode(r.stderr) };
  };
  const badUrl = await run("--cluster", "http://x/y");
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.err, /not a NATS server URL/);
  const badName = await run("--cluster", "nats://127.0.0.1:4222", "--node", "Bad Name!");
  assert.equal(badName.code, 2);
  assert.match(badName.err, /--node Bad Name!: a node name is/);
  const state = await Deno.makeTempDir({ prefix: "gpulet-nonats-" });
  const none = await run("--cluster", "nats://127.0.0.1:1", "--node", "x", "--state", state);
  assert.equal(none.code, 2);
  assert.match(none.err, /cannot reach NATS at nats:\/\/127\.0\.0\.1:1/);
});
