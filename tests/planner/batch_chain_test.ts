/**
 * The batch chain (`src/planner/batch_chain.ts`): exact where queueing theory has a closed form (M/D/1), and
 * for batching gpu-lets close to the request-level simulator, which runs the same rules request by request.
 */
import assert from "node:assert/strict";
import { chainExceeds, preparedSizes, solveBatchChain } from "../../src/planner/batch_chain.ts";
import { replayGpu } from "../../src/sim/request_sim.ts";
import { profile } from "../helpers.ts";

/** Erlang's M/D/1 waiting time: `P(W ≤ t) = (1 − ρ) Σ_{k ≤ t/D} (λ(kD − t))^k / k! · e^{−λ(kD − t)}`. */
function md1WaitAtMost(lambdaPerMs: number, serviceMs: number, t: number): number {
  let sum = 0, factorial = 1;
  for (let k = 0; k <= Math.floor(t / serviceMs); k++) {
    if (k > 0) factorial *= k;
    const x = lambdaPerMs * (k * serviceMs - t);
    sum += (Math.pow(x, k) / factorial) * Math.exp(-x);
  }
  return (1 - lambdaPerMs * serviceMs) * sum;
}

Deno.test("batch chain: batch 1 with fixed service times is the M/D/1 queue (Erlang's formula)", () => {
  for (const rho of [0.3, 0.6, 0.85]) {
    for (const slo of [2.2, 3, 4.5]) {
      const chain = solveBatchChain({ rate: rho * 1000, batch: 1, latencyMs: () => 1 }, 0, 200);
      assert.ok(chain);
      const modelled = chainExceeds(chain, slo, 0);
      const exact = 1 - md1WaitAtMost(rho, 1, slo - 1);
      // Exact but for the phase grid; it never errs low.
      assert.ok(modelled >= exact - 1e-4 && modelled - exact < 0.01, `ρ ${rho}, SLO ${slo}: ${modelled} vs ${exact}`);
    }
  }
});

Deno.test("batch chain: a batching gpu-let's miss share is close to the simulator's, and at least as high", async () => {
  const { latency } = await profile("h200");
  for (const [model, batch, load] of [["resnet50", 8, 0.7], ["bert", 16, 0.8], ["googlenet", 6, 0.85]] as const) {
    const full = latency.latency(model, 50, batch);
    const rate = (load * 1000 * batch) / full, sloMs = 2.2 * full;
    const chain = solveBatchChain(
      { rate, batch, latencyMs: (k) => latency.latency(model, 50, k) },
      0,
      120,
    );
    assert.ok(chain);
    const modelled = chainExceeds(chain, sloMs, 0);
    const [sim] = replayGpu(
      [{ part: 50, functions: [{ name: model, model, batch, rate, sloMs }] }],
      latency,
      undefined,
      { seconds: 100_000 / rate, seed: 3, spread: 0 },
    );
    const simulated = 1 - sim.within;
    const what = `${model} b${batch} at ${load}: chain ${modelled}, sim ${simulated}`;
    assert.ok(modelled >= simulated - 0.005 && modelled - simulated < 0.03, what);
  }
});

Deno.test("batch chain: batches run at the sizes the executor prepares; a queue that cannot keep up has no chain", () => {
  assert.deepEqual(preparedSizes(6), [1, 2, 4, 6]);
  const seen: number[] = [];
  solveBatchChain({ rate: 100, batch: 6, latencyMs: (k) => (seen.push(k), k) }, 0, 0);
  assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), [1, 2, 4, 6]);
  assert.equal(solveBatchChain({ rate: 1000, batch: 4, latencyMs: (k) => k }, 0, 0), undefined);
});
