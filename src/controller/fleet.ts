/**
 * The autoscaled fleet: runs the autoscaler on a timer and applies each new plan to live gpu-lets,
 * make-before-break.
 *
 * Applying a plan: (1) start and warm every gpu-let the new plan has and the running set lacks (the old
 * gpu-lets keep serving meanwhile); (2) switch each function's routing to its new set of gpu-lets in one
 * step (`Dispatcher.setSlots`); (3) let the gpu-lets that left the plan finish their in-flight batches, then
 * stop them. Queued requests stay in their function's queue throughout and go to whichever gpu-let takes the
 * next batch, so a reorganisation neither drops nor fails a request. A gpu-let is one process for all its
 * functions, so a running gpu-let is kept only while it serves the live version of each of them; otherwise
 * (a new version, a function stopped on it) a fresh one is started in its place, make-before-break too. A
 * gpu-let that fails to start is retried by the next repair; one that dies is removed from routing at once
 * and restarted.
 */
import { Autoscaler, type PlanChange, type ScaledFunction } from "../autoscaler/autoscaler.ts";
import { RemotePlanner } from "../autoscaler/remote_planner.ts";
import type { AppGraph } from "../planner/app_split.ts";
import { DEFAULT_SCALE_POLICY, type ScalePolicyOptions } from "../autoscaler/policy.ts";
import type { Slot } from "../admission/dispatcher.ts";
import { LatencyEstimate } from "../admission/latency.ts";
import { DEFAULT_OPTIONS } from "../planner/planner.ts";
import type { Plan } from "../planner/plan.ts";
import { gpuletKey, type PlacedGpulet, placedGpulets } from "../planner/plan_diff.ts";
import type { Executor, GpuletHandle } from "../runtime/executor.ts";
import type { Backend, GpuletLease } from "./backends.ts";
import type { Deployment } from "./deployment.ts";
import {
  DEFAULT_FIXED_LAYOUT,
  FIXED_BATCH,
  fixedGpulets,
  type FixedLayout,
  isFixedGpulet,
  slotBatch,
} from "./fixed_gpulets.ts";
import type { PlanRecord, RunningPlan } from "./running_plan.ts";

/** One function's executor on a running gpu-let. */
interface Member {
  dep: Deployment;
  executor: Executor;
  latency: LatencyEstimate;
}

/** A gpu-let the fleet runs: one process (or simulated gpu-let) serving its functions in turns. */
interface RunningGpulet {
  id: string;
  lease: GpuletLease;
  handle: GpuletHandle;
  members: Map<string, Member>;
  /** The plan's view of it (batches, rates). */
  placed: PlacedGpulet;
  /** Its process ended without being asked to: never routed to or kept again. */
  dead?: boolean;
}

export type { FixedLayout } from "./fixed_gpulets.ts";
export type { PlanRecord, RunningPlan } from "./running_plan.ts";

export interface FleetOptions {
  backend: Backend;
  /** Default: unprofiled functions only, one gpu-let each of one device's 1/4 (at least one core on cpu). */
  fixed?: FixedLayout;
  /** Batches in flight per gpu-let. */
  depth: number;
  /** How often the autoscaler looks at the rates (ms). */
  tickMs?: number;
  scale?: ScalePolicyOptions;
  log: (line: string) => void;
  /** Called when a worker dies (metrics). */
  onWorkerDied?: (fn: string) => void;
  /** Called on every re-plan (metrics). */
  onReplan?: (direction: string) => void;
  /**
   * What apps ask of the function as one of their stages, if any do: the tightest level budget (ms,
   * undilated), which the planner sizes it for when smaller than its own SLO, and the CV its grouped calls
   * arrive with (a frame's crops come together: `groupDispersion`).
   */
  stageDemand?: (fn: string) => { budgetMs: number; arrivalCv?: number } | undefined;
}

/** The batch cap of `m` on its gpu-let ({@link slotBatch}). */
function batchOf(planned: number, functionsOnGpulet: number, m: Member): number {
  const { maxBatch } = m.dep.record.manifest;
  return slotBatch(planned, functionsOnGpulet, m.executor.warmLatencyMs, m.dep.deadlineMs, maxBatch);
}

/** Most time a stopping gpu-let may take to finish its in-flight batches (ms). */
const DRAIN_LIMIT_MS = 30_000;
/** How often the autoscaler looks at the rates by default (ms). */
const DEFAULT_TICK_MS = 200;
/** Plan changes kept for `GET /admin/plan`. */
const HISTORY_LENGTH = 200;
/** First wait before restarting a gpu-let that died or failed to start (ms); doubles up to the cap. */
const REPAIR_FIRST_MS = 200;
const REPAIR_MAX_MS = 30_000;
/** How often a draining gpu-let is checked for in-flight batches (ms). */
const DRAIN_POLL_MS = 5;

export class Fleet {
  readonly autoscaler: Autoscaler;
  readonly history: PlanRecord[] = [];
  private readonly deps = new Map<string, Deployment>();
  private running = new Map<string, RunningGpulet>();
  /** Gpu-lets out of the plan, finishing their batches. */
  private readonly draining = new Set<RunningGpulet>();
  /** A plan (or, before the first one, none: fixed gpu-lets only) waiting to be applied. */
  private wanted?: { plan?: Plan };
  private applying?: Promise<void>;
  private timer?: ReturnType<typeof setInterval>;
  private repairTimer?: ReturnType<typeof setTimeout>;
  private closed = false;
  private seq = 0;
  private readonly records = new WeakMap<Plan, PlanRecord>();
  private readonly planner: RemotePlanner;

  constructor(private readonly opts: FleetOptions) {
    const b = opts.backend;
    this.autoscaler = new Autoscaler({
      device: b.device,
      gpus: b.gpus,
      latency: b.latency,
      interference: b.interference,
      // Without a pairs profile (e.g. cpu:N, one gpu-let per device) there is no interference to plan for.
      policy: b.interference ? "gpulet" : "gpulet-noint",
      scale: opts.scale ?? DEFAULT_SCALE_POLICY,
      rateScale: b.timeScale,
      // Real GPUs: plans never give a GPU more processes than its memory holds.
      ...(b.memory ? { planner: { ...DEFAULT_OPTIONS, memory: b.memory } } : {}),
    });
    this.planner = new RemotePlanner(this.autoscaler.config, opts.log);
    this.timer = setInterval(() => this.tick(), opts.tickMs ?? DEFAULT_TICK_MS);
  }

  /** True if `dep` is not planned but on fixed gpu-lets. */
  private isFixed(dep: Deployment): boolean {
    return this.fixed.all || !this.opts.backend.latency.has(dep.record.manifest.model);
  }

  private get fixed(): FixedLayout {
    return this.opts.fixed ?? DEFAULT_FIXED_LAYOUT;
  }

  /** The fixed gpu-lets, as the plan would list them. */
  private fixedGpulets(): PlacedGpulet[] {
    const fixed = [...this.deps.values()].filter((d) => this.isFixed(d));
    return fixedGpulets(
      fixed.map((d) => ({ name: d.name, deadlineMs: d.deadlineMs })),
      this.fixed,
      this.opts.backend.gpus,
    );
  }

  /** Functions as the planner sees them: SLOs in profile time (undilated). */
  private scaled(): ScaledFunction[] {
    return [...this.deps.values()].filter((d) => !this.isFixed(d)).map((d) => {
      const stage = this.opts.stageDemand?.(d.name);
      const f: ScaledFunction = {
        name: d.name,
        model: d.record.manifest.model,
        sloMs: Math.min(d.record.manifest.sloMs, stage?.budgetMs ?? Infinity),
        maxBatch: d.record.manifest.maxBatch,
      };
      if (stage?.arrivalCv !== undefined) f.arrivalCv = stage.arrivalCv;
      return f;
    });
  }

  /**
   * The planner's split of `app`'s SLO over its levels at `rate` app requests/s (profile time), made in the
   * planner's worker; undefined when a stage's model has no profile on the devices (nothing to plan with).
   */
  async splitApp(app: AppGraph, rate: number): Promise<number[] | undefined> {
    if (!app.levels.flat().every((s) => this.opts.backend.latency.has(s.model))) return undefined;
    return await this.planner.split(app, rate);
  }

  /** Re-reads the functions' SLOs (an app that uses them as stages was deployed, changed or removed). */
  refreshFunctions(): void {
    this.autoscaler.setFunctions(this.scaled());
  }

  /** Records one arrival of `name` (admitted or not: demand is what the plan is for). */
  arrived(name: string): void {
    this.autoscaler.arrived(name, performance.now());
  }

  /** The plan in force, if any. */
  get plan(): Plan | undefined {
    return this.autoscaler.plan;
  }

  /** GPUs with a running or draining gpu-let. */
  gpusInUse(): number {
    const ids = new Set<number>();
    for (const g of [...this.running.values(), ...this.draining]) ids.add(g.lease.gpu);
    return ids.size;
  }

  /** Running gpu-lets (draining ones included). */
  gpuletCount(): number {
    return this.running.size + this.draining.size;
  }

  /**
   * Makes `dep` its function's live deployment (new function or new version) and waits until it is placed
   * and warm. Throws if it ends up without a gpu-let (its workers could not start); the previous version
   * (if any) is then live again.
   */
  async place(dep: Deployment): Promise<void> {
    const previous = this.deps.get(dep.name);
    this.deps.set(dep.name, dep);
    this.autoscaler.setFunctions(this.scaled());
    try {
      await this.settle();
      if (!dep.ready) {
        throw dep.startError ?? new Error(
          `no gpu-let could be placed for ${dep.name} on ${this.opts.backend.gpus} ` +
            `${this.opts.backend.kind} devices`,
        );
      }
    } catch (e) {
      if (previous) this.deps.set(dep.name, previous);
      else this.deps.delete(dep.name);
      this.autoscaler.setFunctions(this.scaled());
      await this.settle();
      throw e;
    }
  }

  /** Forgets a function; its gpu-lets leave the plan at once. */
  async unplace(name: string): Promise<void> {
    this.deps.delete(name);
    this.autoscaler.setFunctions(this.scaled());
    await this.settle();
  }

  /** Re-plans now if the policy says so, else re-applies the plan in force; waits until it is applied. */
  private async settle(): Promise<void> {
    let change;
    try {
      change = await this.autoscaler.tickAsync((r) => this.planner.plan(r), true);
    } catch (e) {
      // The plan in force is applied all the same (a removed function's gpu-lets must still go).
      this.opts.log(`re-plan failed: ${e instanceof Error ? e.message : e}`);
    }
    // No re-plan (the demand did not move, or the change is a version or a fixed gpu-let): the plan in force is
    // applied again, which starts and stops only what differs.
    if (change && !this.closed) this.record(change);
    else this.want(this.plan);
    await this.idle();
  }

  /** Waits until every wanted plan has been applied. */
  private async idle(): Promise<void> {
    while (this.applying) await this.applying;
  }

  private tick(): void {
    if (this.closed) return;
    // Planning runs in a worker; a tick while a re-plan is in flight does nothing.
    this.autoscaler.tickAsync((r) => this.planner.plan(r)).then((change) => {
      if (change && !this.closed) this.record(change);
    }, (e) => this.opts.log(`re-plan failed: ${(e as Error).message}`));
  }

  private record(change: PlanChange): void {
    const rec: PlanRecord = { ...change, at: new Date().toISOString(), started: 0, stopped: 0 };
    this.history.push(rec);
    if (this.history.length > HISTORY_LENGTH) this.history.shift();
    this.opts.log(
      `plan ${change.direction}: ${change.gpusBefore} → ${change.gpusAfter} GPUs, ${change.changes} gpu-let ` +
        `changes (${change.reason}) in ${change.planMs.toFixed(0)} ms`,
    );
    this.records.set(change.plan, rec);
    this.opts.onReplan?.(change.direction);
    this.want(change.plan);
  }

  /** Asks for `plan` to be applied; plans wanted while one is being applied collapse into the latest. */
  private want(plan: Plan | undefined): void {
    this.wanted = { plan };
    if (this.applying) return;
    this.applying = (async () => {
      while (this.wanted && !this.closed) {
        const next = this.wanted.plan;
        this.wanted = undefined;
        const t0 = performance.now();
        try {
          const { started, stopped } = await this.apply(next);
          const rec = next && this.records.get(next);
          if (rec && rec.applyMs === undefined) {
            rec.started = started;
            rec.stopped = stopped;
            rec.applyMs = performance.now() - t0;
          }
        } catch (e) {
          this.opts.log(`applying a plan failed: ${e instanceof Error ? e.stack : e}`);
        }
      }
    })().finally(() => (this.applying = undefined));
  }

  /** Applies `plan` (with the fixed gpu-lets) make-before-break. */
  private async apply(plan: Plan | undefined): Promise<{ started: number; stopped: number }> {
    const desired = this.desired(plan);
    const next = new Map<string, RunningGpulet>();
    const starts: Promise<void>[] = [];
    let started = 0;
    for (const [id, placed] of desired) {
      const deps = placed.functions.flatMap((f) => this.deps.get(f.name) ?? []);
      // None of its functions is deployed (a plan not yet re-made after a removal): it leaves.
      if (deps.length === 0) continue;
      const old = this.running.get(id);
      if (old && this.serves(old, placed)) {
        old.placed = placed;
        next.set(id, old);
        continue;
      }
      started++;
      // If the fresh one fails, the one it was to replace stays (it serves what it served, e.g. the
      // previous version while a new one is refused).
      starts.push(
        this.startGpulet(id, placed, deps).then((g) => {
          if (g) next.set(id, g);
          else if (old && !old.dead) next.set(id, old);
        }),
      );
    }
    // 1. Start and warm the new gpu-lets while the old ones serve.
    await Promise.all(starts);
    // Any that died meanwhile (kept or just started) are not kept: the next repair restarts them.
    for (const [id, g] of next) if (g.dead) next.delete(id);
    // A function the new plan leaves without any warm gpu-let (the devices are full, or its starts failed)
    // keeps the old gpu-lets it has: its requests are never without one.
    const kept = new Set(next.values());
    const served = new Set([...next.values()].flatMap((g) => [...g.members.keys()]));
    for (const [id, g] of this.running) {
      if (kept.has(g) || g.dead) continue;
      const orphans = [...g.members.values()].some((m) =>
        this.deps.get(m.dep.name) === m.dep && !m.executor.stopping && !served.has(m.dep.name)
      );
      if (orphans) {
        next.set(next.has(id) ? g.id : id, g);
        kept.add(g);
      }
    }
    const leaving = [...this.running.values()].filter((g) => !kept.has(g));
    this.running = next;
    // 2. Switch every function's routing at once.
    this.route();
    // 3. Drain and stop what left the plan (after the queues of the replaced versions on it).
    for (const g of leaving) this.retire(g);
    return { started, stopped: leaving.length };
  }

  /**
   * The gpu-lets `plan` and the fixed layout ask for, keyed by identity (GPU, part, functions, and a count
   * for identical ones): running gpu-lets are matched to them by this key.
   */
  private desired(plan: Plan | undefined): Map<string, PlacedGpulet> {
    const desired = new Map<string, PlacedGpulet>();
    const seen = new Map<string, number>();
    for (const g of [...(plan ? placedGpulets(plan) : []), ...this.fixedGpulets()]) {
      const k = gpuletKey(g);
      const n = seen.get(k) ?? 0;
      seen.set(k, n + 1);
      desired.set(`${k}#${n}`, g);
    }
    return desired;
  }

  /** True if `g` serves the live version of each of the plan's functions on it. */
  private serves(g: RunningGpulet, placed: PlacedGpulet): boolean {
    return !g.dead && placed.functions.every((f) => {
      const dep = this.deps.get(f.name);
      const m = g.members.get(f.name);
      return !dep || (m !== undefined && m.dep === dep && !m.executor.stopping);
    });
  }

  /** Leases the plan's share and starts one gpu-let serving `deps` on it; undefined if it failed. */
  private async startGpulet(
    id: string,
    placed: PlacedGpulet,
    deps: Deployment[],
  ): Promise<RunningGpulet | undefined> {
    const lease = this.opts.backend.lease(placed.gpu, placed.part);
    try {
      const handle = await this.opts.backend.start(deps, lease);
      if (this.closed) {
        await handle.stop();
        lease.release();
        return undefined;
      }
      const g: RunningGpulet = { id: `${id}@${this.seq++}`, lease, handle, members: new Map(), placed };
      deps.forEach((dep, i) => {
        const executor = handle.executors[i];
        dep.adopt(executor);
        g.members.set(dep.name, { dep, executor, latency: new LatencyEstimate(executor.warmLatencyMs) });
      });
      this.watch(g);
      return g;
    } catch (e) {
      lease.release();
      const error = e instanceof Error ? e : new Error(String(e));
      // A gpu-let of several functions names the one that failed; that one is refused, not its neighbours.
      const culprits = deps.length === 1 ? deps : deps.filter((d) => error.message.startsWith(`${d.name}: `));
      for (const dep of culprits.length ? culprits : deps) dep.startError ??= error;
      this.opts.log(
        `${
          deps.map((d) => d.name).join(", ")
        }: gpu-let on GPU ${placed.gpu} (${placed.part} %) failed to start: ${error.message}`,
      );
      return undefined;
    }
  }

  /** Sets every live function's slots from the running gpu-lets. */
  private route(): void {
    const slots = new Map<string, Slot[]>();
    for (const g of this.running.values()) {
      if (g.dead) continue;
      for (const f of g.placed.functions) {
        const m = g.members.get(f.name);
        if (!m || m.dep !== this.deps.get(f.name) || m.executor.stopping) continue;
        const list = slots.get(f.name) ?? [];
        const batch = batchOf(f.batch, g.placed.functions.length, m);
        list.push({ worker: m.executor, batch, maxDelayMs: 0, depth: this.opts.depth, latency: m.latency });
        slots.set(f.name, list);
      }
    }
    for (const dep of this.deps.values()) {
      const list = slots.get(dep.name) ?? [];
      // A function the plan could not place at all keeps what it had rather than nothing.
      if (list.length > 0 || !dep.ready) dep.dispatcher.setSlots(list);
    }
  }

  /**
   * Lets a gpu-let finish its in-flight batches, and the queues of the replaced versions it still serves (they
   * drain on it, as their deployment stops), then stops it and releases its share.
   */
  private async retire(g: RunningGpulet): Promise<void> {
    this.draining.add(g);
    const until = performance.now() + DRAIN_LIMIT_MS;
    const replaced = (m: Member) => this.deps.get(m.dep.name) !== m.dep;
    const busy = () =>
      [...g.members.values()].some((m) =>
        !m.executor.stopping && (m.executor.inflight > 0 || (replaced(m) && m.dep.dispatcher.depth > 0))
      );
    while (busy() && performance.now() < until) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    await g.handle.stop();
    g.lease.release();
    this.draining.delete(g);
  }

  /** A gpu-let that dies is taken out of routing and restarted by a repair. */
  private watch(g: RunningGpulet): void {
    g.handle.exited.then((status) => {
      const members = [...g.members.values()];
      // Stopped on purpose (retired, or each function's version stopped): not a crash.
      if (this.closed || members.every((m) => m.executor.stopping)) return;
      // Marked, not only removed: an apply in progress may hold it (kept, or just started) and must drop it.
      g.dead = true;
      if (this.draining.has(g)) return; // out of the plan already: retire() releases it
      const key = [...this.running].find(([, r]) => r === g)?.[0];
      if (key !== undefined) this.running.delete(key);
      g.lease.release();
      this.opts.log(`${g.handle.id} died (${status.signal ?? `code ${status.code}`}), restarting`);
      for (const m of members) {
        this.opts.onWorkerDied?.(m.dep.name);
        // Out of routing even when it was the function's only gpu-let (`route` keeps a function's old slots
        // when the plan leaves it none): its requests wait in the queue for the restart instead.
        m.dep.dispatcher.setSlots(m.dep.dispatcher.getSlots().filter((s) => s.worker !== m.executor));
      }
      this.route();
      this.scheduleRepair();
    });
  }

  private scheduleRepair(delayMs = REPAIR_FIRST_MS): void {
    if (this.repairTimer !== undefined || this.closed) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      this.want(this.plan);
      // Still missing (start failed)? Try again later.
      this.idle().then(() => {
        const wanted = [...this.desired(this.plan).values()]
          .filter((g) => g.functions.some((f) => this.deps.has(f.name))).length;
        const missing = this.running.size < wanted ||
          [...this.running.values()].some((g) => !this.serves(g, g.placed));
        if (missing) this.scheduleRepair(Math.min(REPAIR_MAX_MS, delayMs * 2));
      });
    }, delayMs);
  }

  /** The running plan (`GET /admin/plan`, `/ui`): the plan with the fixed gpu-lets, who serves each, history. */
  describe(): RunningPlan {
    const b = this.opts.backend;
    const plan = this.plan ??
      { policy: "gpulet" as const, device: b.device, feasible: true, gpusUsed: 0, gpus: [], unserved: [] };
    const gpus = new Map<number, RunningPlan["gpus"][number]["gpulets"]>();
    for (const [key, placed] of this.desired(this.plan)) {
      const g = this.running.get(key);
      const list = gpus.get(placed.gpu) ?? [];
      gpus.set(placed.gpu, list);
      list.push({
        part: placed.part,
        ...(isFixedGpulet(placed) ? { fixed: true as const } : {}),
        // A fixed gpu-let's batch is chosen at start, from its warm-up.
        functions: placed.functions.map((f) => {
          const m = g?.members.get(f.name);
          return m && f.batch === FIXED_BATCH ? { ...f, batch: batchOf(f.batch, 1, m) } : f;
        }),
        ...(g
          ? {
            id: g.handle.id,
            pid: g.handle.pid,
            cores: g.lease.cores,
            executors: [...g.members.values()].map((m) => m.executor.id),
          }
          : {}),
      });
    }
    return {
      ...plan,
      gpusUsed: gpus.size,
      gpus: [...gpus].sort((x, y) => x[0] - y[0]).map(([id, gpulets]) => ({ id, gpulets })),
      devices: { kind: b.kind, count: b.gpus, timeScale: b.timeScale },
      gpusInUse: this.gpusInUse(),
      gpulets: this.gpuletCount(),
      replans: this.autoscaler.replans,
      workers: [...this.running.values()].map((g) => ({
        gpu: g.lease.gpu,
        part: g.lease.part,
        cores: g.lease.cores,
        id: g.handle.id,
        pid: g.handle.pid,
        functions: [...g.members.values()].map((m) => ({
          name: m.dep.name,
          version: m.dep.version,
          id: m.executor.id,
          inflight: m.executor.inflight,
          latencyMs: m.latency.toJSON(),
        })),
      })),
      history: this.history.map(({ plan: _plan, ...rest }) => rest),
    };
  }

  /** The recent plan changes with their full plans. */
  changes(): readonly PlanRecord[] {
    return this.history;
  }

  /** Stops the timer, then every gpu-let (after in-flight batches). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.planner.close();
    clearTimeout(this.repairTimer);
    await this.idle();
    await Promise.all([...this.running.values()].map((g) => this.retire(g)));
    this.running.clear();
    while (this.draining.size > 0) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
  }
}
