/**
 * The autoscaler's rate monitor and re-plan policy, driven in virtual time by seeded arrivals: a steady load
 * never re-plans, a 4× step re-plans up within about a second, a drop re-plans down only after the calm period.
 */
import assert from "node:assert/strict";
import { committed, decide, DEFAULT_SCALE_POLICY, scaleState } from "../../src/autoscaler/policy.ts";
import { RateMonitor } from "../../src/autoscaler/rate_monitor.ts";
import { nextGapMs } from "../../src/loadgen/arrivals.ts";
import { seededRandom } from "../../src/planner/random.ts";

/** Feeds Poisson arrivals of `rate(t)` into a monitor from `from` to `to` ms, deciding every 100 ms. */
function run(
  monitor: RateMonitor,
  state: ReturnType<typeof scaleState>,
  rate: (t: number) => number,
  from: number,
  to: number,
  random: () => number,
) {
  const replans: { at: number; direction: string; demand: number }[] = [];
  let next = from + nextGapMs(rate(from), 1, random);
  for (let t = from; t < to; t += 100) {
    while (next < t + 100) {
      monitor.record("f", next);
      next += nextGapMs(rate(next), 1, random);
    }
    const d = decide(state, new Map([["f", monitor.rates("f", t + 100)]]), t + 100);
    if (d.kind === "replan") {
      replans.push({ at: t + 100, direction: d.direction, demand: d.demand.get("f")! });
      committed(state, d.demand, t + 100);
    }
  }
  return replans;
}

Deno.test("rate monitor: short and smoothed rates follow a Poisson stream and decay when it stops", () => {
  const m = new RateMonitor();
  const random = seededRandom(1);
  let t = 0;
  while (t < 20_000) {
    t += nextGapMs(200, 1, random);
    m.record("f", t);
  }
  const r = m.rates("f", 20_000);
  assert.ok(Math.abs(r.short - 200) < 200 * 0.25, `short ${r.short}`);
  assert.ok(Math.abs(r.smoothed - 200) < 200 * 0.15, `smoothed ${r.smoothed}`);
  const later = m.rates("f", 40_000);
  assert.equal(later.short, 0);
  assert.ok(later.smoothed < 200 * Math.exp(-3), `smoothed decays: ${later.smoothed}`);
  assert.deepEqual(m.rates("unknown", 0), { short: 0, smoothed: 0 });
});

Deno.test("policy: steady load holds; a 4x step scales up within 1.5 s; a drop scales down only after calm", () => {
  const random = seededRandom(7);
  const monitor = new RateMonitor();
  const state = scaleState(new Map([["f", 100 * (1 + DEFAULT_SCALE_POLICY.headroom)]]), 0);
  // Warm the smoothed rate at 100/s, then 60 s steady: no re-plan at all.
  const steady = run(monitor, state, () => 100, 0, 60_000, random);
  assert.deepEqual(steady, [], `steady load re-planned: ${JSON.stringify(steady)}`);
  // Step to 400/s at 60 s.
  const step = run(monitor, state, () => 400, 60_000, 90_000, random);
  assert.ok(step.length >= 1 && step[0].direction === "up", JSON.stringify(step));
  assert.ok(step[0].at - 60_000 <= 1500, `reacted after ${step[0].at - 60_000} ms`);
  assert.ok(state.planned.get("f")! >= 400, `planned ${state.planned.get("f")} covers 400/s`);
  assert.ok(step.every((r) => r.direction === "up"), "no down while the step holds");
  // Back to 100/s: nothing for the calm period, then one re-plan down that covers 100/s.
  const drop = run(monitor, state, () => 100, 90_000, 150_000, random);
  assert.ok(drop.length >= 1 && drop.every((r) => r.direction === "down"), JSON.stringify(drop));
  // A 4x drop is far below the plan: released after the short calm period, not before.
  assert.ok(drop[0].at - 90_000 >= DEFAULT_SCALE_POLICY.fastCalmMs!, `released after ${drop[0].at - 90_000} ms`);
  assert.ok(drop[0].at - 90_000 < DEFAULT_SCALE_POLICY.calmMs, `released after ${drop[0].at - 90_000} ms`);
  assert.ok(state.planned.get("f")! >= 100 && state.planned.get("f")! < 200, `planned ${state.planned.get("f")}`);
});

Deno.test("policy: a moderate drop waits the full calm period", () => {
  const random = seededRandom(9);
  const monitor = new RateMonitor();
  const state = scaleState(new Map([["f", 400 * (1 + DEFAULT_SCALE_POLICY.headroom)]]), 0);
  assert.deepEqual(run(monitor, state, () => 400, 0, 30_000, random), []);
  // 400 → 200/s: below 60 % of the plan, not below 40 %.
  const drop = run(monitor, state, () => 200, 30_000, 80_000, random);
  assert.ok(drop.length >= 1 && drop[0].direction === "down", JSON.stringify(drop));
  assert.ok(drop[0].at - 30_000 >= DEFAULT_SCALE_POLICY.calmMs, `released after ${drop[0].at - 30_000} ms`);
});

Deno.test("policy: a new function is planned at once, a removed one is dropped, idle keeps a minimum", () => {
  const state = scaleState(new Map([["a", 50]]), 0);
  const d = decide(state, new Map([["b", { short: 0, smoothed: 0 }]]), 10);
  assert.equal(d.kind, "replan");
  if (d.kind !== "replan") return;
  assert.equal(d.direction, "new");
  assert.match(d.reason, /b deployed, a removed/);
  assert.deepEqual([...d.demand], [["b", DEFAULT_SCALE_POLICY.minRate]]);
});
