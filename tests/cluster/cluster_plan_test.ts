/**
 * The cluster planner (pure): the one-node planner over every node's GPUs, numbered node by node, so the
 * fewest GPUs are the fewest nodes; routes carry the whole demand; nodes of another device type are left out.
 */
import assert from "node:assert/strict";
import { planCluster } from "../../src/cluster/cluster_plan.ts";
import { profile } from "../helpers.ts";

const stamp = { epoch: 1, seq: 1, leader: "a", at: "2026-12-02T00:00:00Z" };

Deno.test("cluster plan: the demand on the fewest GPUs and nodes, routes that add up to it", async () => {
  const { latency, interference } = await profile("h100");
  const nodes = ["c", "a", "b"].map((name) => ({ name, device: "h100", gpus: 4, timeScale: 1 }));
  nodes.push({ name: "z", device: "h200", gpus: 8, timeScale: 1 });
  const fns = (bert: number) => [
    { name: "bert", model: "bert", sloMs: 20, maxBatch: 32, demand: bert },
    { name: "lenet", model: "lenet", sloMs: 5, maxBatch: 32, demand: 500 },
    { name: "idle", model: "resnet50", sloMs: 20, maxBatch: 32, demand: 0 },
  ];
  const small = planCluster(nodes, fns(200), { device: "h100", latency, interference }, stamp);
  const big = planCluster(nodes, fns(40_000), { device: "h100", latency, interference }, stamp);
  assert.equal(small.gpusTotal, 12, "the h200 node is not planned with the h100 profile");
  assert.ok(small.feasible && big.feasible);
  assert.ok(
    small.gpusUsed >= 1 && small.gpusUsed < big.gpusUsed && big.gpusUsed <= 12,
    `${small.gpusUsed} < ${big.gpusUsed}`,
  );
  // Node by node in name order: a small demand fits on a alone.
  assert.deepEqual(small.nodes.filter((n) => n.gpusUsed > 0).map((n) => n.name), ["a"]);
  for (const plan of [small, big]) {
    for (const [fn, want] of [["bert", plan.demand.bert], ["lenet", 500]] as const) {
      const routed = plan.routes[fn].reduce((s, r) => s + r.rate, 0);
      assert.ok(Math.abs(routed - want) / want < 0.01, `${fn}: ${routed} routed of ${want}`);
    }
    assert.equal(plan.routes.idle, undefined, "no demand, no route: any ready node serves it");
    assert.equal(plan.nodes.find((n) => n.name === "z")!.gpusUsed, 0);
  }
  // Simulated devices plan in profile time and route in real requests/s.
  const dilated = planCluster(
    nodes.slice(0, 3).map((n) => ({ ...n, timeScale: 10 })),
    fns(20),
    { device: "h100", latency, interference },
    stamp,
  );
  assert.ok(Math.abs(dilated.routes.bert.reduce((s, r) => s + r.rate, 0) - 20) < 0.2);
});
