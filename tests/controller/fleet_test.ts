/**
 * The fleet (`src/controller/fleet.ts`) against a fake backend whose executors are in-process fakes: placing a
 * function starts the gpu-lets of its plan and routes to them; a new version goes live make-before-break; a
 * version whose gpu-lets cannot start is refused and the previous one stays live; a gpu-let that dies leaves
 * routing at once and is restarted; close drains and releases everything. The planner and autoscaler are the
 * real ones (on the H100 profile). Synchronisation is by hooks (a start began, a start finished), not sleeps.
 */
import assert from "node:assert/strict";
import type { Backend, GpuletLease } from "../../src/controller/backends.ts";
import { Deployment } from "../../src/controller/deployment.ts";
import { Fleet } from "../../src/controller/fleet.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { type BatchResult, type Executor, gpuletOf } from "../../src/runtime/executor.ts";
import type { RunItem } from "../../src/runtime/protocol.ts";
import { profile } from "../helpers.ts";

type Exit = { code: number; signal: string | null };

/** An executor that answers every batch after a short timer, as a warm gpu-let would. */
class FakeGpulet implements Executor {
  readonly pid = 0;
  readonly model = { inputs: [], outputs: [], batchable: true };
  readonly warmLatencyMs = { 1: 1, 8: 2 };
  readonly exited: Promise<Exit>;
  inflight = 0;
  stopping = false;
  batches = 0;
  private exit!: (e: Exit) => void;

  constructor(readonly id: string, readonly version: number) {
    this.exited = new Promise((r) => (this.exit = r));
  }

  async run(items: RunItem[]): Promise<BatchResult> {
    if (this.stopping) throw new Error(`${this.id} is stopped`);
    this.inflight++;
    this.batches++;
    await new Promise((r) => setTimeout(r, 1));
    this.inflight--;
    // The answer names the version that computed it, so tests see who served a request.
    const body = new TextEncoder().encode(JSON.stringify({ version: this.version }));
    return {
      type: "result",
      batchId: 0,
      items: items.map((i) => ({ id: i.id, ok: true, json: { offset: 0, bytes: body.length } })),
      rows: items.length,
      computeMs: 1,
      workerMs: 1,
      body,
    };
  }

  stop(): Promise<void> {
    this.stopping = true;
    this.exit({ code: 0, signal: null });
    return Promise.resolve();
  }

  kill(): void {
    this.stopping = true;
    this.exit({ code: 1, signal: "SIGKILL" });
  }

  /** The process dies on its own (not asked to): the fleet must notice. */
  crash(): void {
    this.exit({ code: 1, signal: "SIGSEGV" });
  }
}

/** A backend of fake gpu-lets; a test can hold starts back, fail them, and wait for them. */
class FakeBackend {
  readonly executors: FakeGpulet[] = [];
  leases = 0;
  /** Versions whose starts fail. */
  readonly failing = new Set<number>();
  /** While set, starts wait for it. */
  gate?: Promise<void>;
  private started: ((e: FakeGpulet) => void)[] = [];
  private begun: (() => void)[] = [];

  constructor(readonly backend: Omit<Backend, "lease" | "start" | "refuse">) {}

  asBackend(): Backend {
    return {
      ...this.backend,
      refuse: () => undefined,
      lease: (gpu, part): GpuletLease => {
        this.leases++;
        let released = false;
        return {
          gpu,
          part,
          release: () => {
            if (!released) this.leases--;
            released = true;
          },
        };
      },
      start: async (deps) => {
        this.begun.splice(0).forEach((r) => r());
        if (this.gate) await this.gate;
        const failing = deps.find((d) => this.failing.has(d.version));
        if (failing) throw new Error(`v${failing.version} does not load`);
        const executors = deps.map((dep) => {
          const e = new FakeGpulet(`${dep.name}-v${dep.version}-${this.executors.length}`, dep.version);
          this.executors.push(e);
          this.started.splice(0).forEach((r) => r(e));
          return e;
        });
        return gpuletOf(executors.map((e) => e.id).join("+"), executors);
      },
    };
  }

  /** Resolves when the next start begins. */
  nextStartBegins(): Promise<void> {
    return new Promise((r) => this.begun.push(r));
  }

  /** Resolves with the executor of the next start that succeeds. */
  nextStarted(): Promise<FakeGpulet> {
    return new Promise((r) => this.started.push(r));
  }
}

const { latency, interference } = await profile("h100");

function setup() {
  const fake = new FakeBackend({ device: "h100", kind: "sim", gpus: 2, latency, interference, timeScale: 1 });
  // A long tick: re-plans happen only when the test places or removes a function.
  const fleet = new Fleet({ backend: fake.asBackend(), depth: 2, tickMs: 60_000, log: () => {} });
  const metrics = new Metrics({ functions: () => [], workers: () => 0 });
  const deployment = (version: number, name = "classify", model = "resnet50") =>
    new Deployment({
      name,
      version,
      dir: "/nonexistent",
      deployedAt: new Date().toISOString(),
      manifest: { name, model, sloMs: 50, maxBatch: 8, json: true },
    }, {
      modelsDir: "/nonexistent",
      runtimeDir: "/nonexistent",
      metrics,
      maxQueueRows: 1000,
      depth: 2,
      log: () => {},
    });
  return { fake, fleet, deployment };
}

/** `n` requests to `dep`; the versions that answered them (or the status when not 200). */
async function invoke(dep: Deployment, n: number): Promise<(number | string)[]> {
  const answers = await Promise.all(
    Array.from({ length: n }, () => dep.submit({ kind: "json", body: new TextEncoder().encode("{}") }, 1)),
  );
  return answers.map((a) =>
    "json" in a
      ? JSON.parse(new TextDecoder().decode(a.json)).version
      : `status ${a.status}${"error" in a ? `: ${a.error}` : ""}`
  );
}

Deno.test("fleet: a placed function is served by its plan's gpu-lets; close stops them and releases their share", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1);
  await fleet.place(v1);
  assert.ok(v1.ready);
  assert.ok(fake.executors.length >= 1, "a gpu-let started");
  assert.equal(fleet.gpuletCount(), fake.executors.length);
  assert.deepEqual(new Set(await invoke(v1, 20)), new Set([1]));
  assert.equal(fleet.describe().workers.flatMap((w) => w.functions).length, fake.executors.length);
  await fleet.close();
  await v1.stop(false);
  assert.ok(fake.executors.every((e) => e.stopping), "every executor stopped");
  assert.equal(fake.leases, 0, "every lease released");
});

Deno.test("fleet: a new version goes live make-before-break: the old one serves until the new one is warm", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1), v2 = deployment(2);
  await fleet.place(v1);
  const old = [...fake.executors];
  // Hold v2's start back, and serve v1 meanwhile.
  let open!: () => void;
  fake.gate = new Promise((r) => (open = r));
  const begun = fake.nextStartBegins();
  const placing = fleet.place(v2);
  await begun;
  assert.deepEqual(new Set(await invoke(v1, 10)), new Set([1]), "v1 serves while v2 starts");
  assert.ok(old.every((e) => !e.stopping), "v1's gpu-lets keep running until v2 is warm");
  open();
  fake.gate = undefined;
  await placing;
  assert.ok(v2.ready);
  assert.deepEqual(new Set(await invoke(v2, 10)), new Set([2]));
  await fleet.close();
  await Promise.all([v1.stop(false), v2.stop(false)]);
  assert.equal(fake.leases, 0);
});

Deno.test("fleet: a version whose gpu-lets cannot start is refused with the reason; the previous one stays live", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1), v2 = deployment(2);
  await fleet.place(v1);
  fake.failing.add(2);
  await assert.rejects(() => fleet.place(v2), /v2 does not load/);
  assert.ok(!v2.ready);
  assert.ok(v1.ready);
  assert.deepEqual(new Set(await invoke(v1, 10)), new Set([1]));
  await fleet.close();
  await v1.stop(false);
  assert.equal(fake.leases, 0);
});

Deno.test("fleet: a gpu-let that dies leaves routing at once and is restarted", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1);
  await fleet.place(v1);
  const before = v1.dispatcher.getSlots().length;
  const victim = fake.executors[0];
  const restarted = fake.nextStarted();
  victim.crash();
  await victim.exited;
  // Out of routing before any restart (a few microtasks on, no timer turn): nothing goes to a dead process.
  const routed = () => v1.dispatcher.getSlots().some((s) => s.worker === victim);
  for (let hop = 0; hop < 10 && routed(); hop++) await Promise.resolve();
  assert.ok(!routed());
  const fresh = await restarted;
  // The repair applies the plan again: the fresh executor is routed as soon as that apply returns (a few
  // turns of the event loop after its start).
  for (let turn = 0; !v1.dispatcher.getSlots().some((s) => s.worker === fresh); turn++) {
    assert.ok(turn < 1000, "the restarted gpu-let is routed");
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(v1.dispatcher.getSlots().length, before);
  const victimBatches = victim.batches;
  assert.deepEqual(new Set(await invoke(v1, 20)), new Set([1]));
  assert.equal(victim.batches, victimBatches, "nothing more went to the dead gpu-let");
  await fleet.close();
  await v1.stop(false);
  assert.equal(fake.leases, 0);
});

Deno.test("fleet: a model without a profile gets a fixed gpu-let beside the planned ones; removing it stops it", async () => {
  const { fake, fleet, deployment } = setup();
  const planned = deployment(1);
  const unprofiled = deployment(1, "vad", "silero_vad_v5"); // no H100 profile: the planner cannot size it
  await fleet.place(planned);
  await fleet.place(unprofiled);
  assert.ok(unprofiled.ready);
  const view = fleet.describe();
  const gpulets = view.gpus.flatMap((g) => g.gpulets);
  const fixed = gpulets.filter((l) => l.fixed);
  assert.deepEqual(fixed.map((l) => l.functions.map((f) => f.name)), [["vad"]]);
  // Its batch comes from its warm-up (FakeGpulet: 2 ms at 8, which fits twice in 50 ms).
  assert.equal(fixed[0].functions[0].batch, 8);
  assert.ok(gpulets.some((l) => !l.fixed && l.functions.some((f) => f.name === "classify")));
  assert.ok(gpulets.every((l) => l.pid !== undefined && l.id !== undefined), "every gpu-let is running");
  assert.equal(view.workers.length, gpulets.length, "one process per gpu-let");
  assert.deepEqual(new Set(await invoke(unprofiled, 5)), new Set([1]));
  const vadExecutor = fake.executors.find((e) => e.id.startsWith("vad-"))!;
  await unprofiled.stop(false);
  await fleet.unplace("vad");
  assert.ok(vadExecutor.stopping);
  assert.equal(fleet.describe().gpus.flatMap((g) => g.gpulets).filter((l) => l.fixed).length, 0);
  // Retiring finishes a few microtasks after the plan is applied (no timer turn: its executor has no batch).
  for (let hop = 0; hop < 20 && fleet.gpuletCount() > gpulets.length - 1; hop++) await Promise.resolve();
  assert.equal(fleet.gpuletCount(), gpulets.length - 1, "its gpu-let stopped and its share released");
  await fleet.close();
  await planned.stop(false);
  assert.equal(fake.leases, 0);
});

Deno.test("fleet: requests queued for the old version when a new one goes live are all served by the old one", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1), v2 = deployment(2);
  await fleet.place(v1);
  const queued = invoke(v1, 100); // more than its gpu-lets take at once: most of them wait in its queue
  await fleet.place(v2);
  const draining = v1.stop(true); // as the controller does once v2 is live
  assert.deepEqual(new Set(await queued), new Set([1]), "no queued request failed with the switch");
  await draining;
  assert.deepEqual(new Set(await invoke(v2, 10)), new Set([2]));
  await fleet.close();
  await v2.stop(false);
  assert.equal(fake.leases, 0);
});

Deno.test("fleet: a gpu-let that dies while a plan is being applied is not kept: it is restarted", async () => {
  const { fake, fleet, deployment } = setup();
  const v1 = deployment(1);
  await fleet.place(v1);
  const victim = fake.executors[0];
  // Place a second function, holding its start back: the apply keeps classify's gpu-let meanwhile.
  let open!: () => void;
  fake.gate = new Promise((r) => (open = r));
  const begun = fake.nextStartBegins();
  const other = deployment(1, "other", "bert");
  const placing = fleet.place(other);
  await begun;
  const restarted = fake.nextStarted();
  victim.crash(); // dies mid-apply
  await victim.exited;
  open();
  fake.gate = undefined;
  await placing;
  // The repair starts a fresh one for classify; the dead one is never routed again.
  for (let turn = 0; !v1.dispatcher.getSlots().some((s) => s.worker !== victim); turn++) {
    assert.ok(turn < 1000, "classify is routed to a fresh gpu-let");
    await new Promise((r) => setTimeout(r, 0));
  }
  await restarted;
  assert.ok(v1.dispatcher.getSlots().every((s) => s.worker !== victim), "the dead gpu-let is out of routing");
  assert.deepEqual(new Set(await invoke(v1, 10)), new Set([1]));
  await fleet.close();
  await Promise.all([v1.stop(false), other.stop(false)]);
  assert.equal(fake.leases, 0, "every lease released once");
});
