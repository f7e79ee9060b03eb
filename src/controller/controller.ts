/**
 * The controller: deploys function and app bundles (registry in Deno KV, files under the state directory),
 * keeps one live {@link Deployment} per function and one {@link AppDeployment} per app, restores them at
 * start-up, re-splits the apps' SLOs for their rates, and shuts everything down cleanly.
 */
import { Metrics } from "../observability/metrics.ts";
import { type Bundle, isAppBundle, writeBundle } from "../functions/bundle.ts";
import { isBundledModel } from "../functions/manifest.ts";
import {
  type AppRecord,
  type DeployedRecord,
  type FunctionRecord,
  isAppRecord,
  Registry,
} from "../functions/registry.ts";
import { DEFAULT_MODELS_DIR, ensureModels, ZOO } from "../models/zoo.ts";
import { CpuDevice } from "../runtime/cpu_device.ts";
import { WorkerStartError } from "../runtime/socket_process.ts";
import type { ScalePolicyOptions } from "../autoscaler/policy.ts";
import { type Backend, cpuBackend, cudaBackend, parseDevices, simBackend } from "./backends.ts";
import { type MpsMode, prepareCuda } from "../cuda/setup.ts";
import { type CommandRunner, systemRunner } from "../cuda/runner.ts";
import { DEFAULT_CONTEXT_MIB } from "../cuda/worker_env.ts";
import { ortBindingPath } from "../runtime/worker_command.ts";
import { Deployment, type DeploymentOptions, modelPath } from "./deployment.ts";
import { DEFAULT_FIXED_LAYOUT } from "./fixed_gpulets.ts";
import { Fleet, type RunningPlan } from "./fleet.ts";
import { AppDeployment, type AppDeploymentOptions } from "./app_deployment.ts";
import { type AppGraph, dispersedCv, groupDispersion } from "../planner/app_split.ts";

/** One entry of the repository index (Triton's model repository extension). */
export interface RepositoryEntry {
  name: string;
  version: string;
  state: "READY" | "LOADING" | "UNAVAILABLE";
  reason: string;
}

/**
 * How deploys and removals reach other nodes (a cluster's, `src/cluster/`): version numbers come from it,
 * and it hears of each deploy and removal made here. Absent: one node, versions counted locally.
 */
export interface Replication {
  /** The version the next deploy of `name` gets. */
  nextVersion(name: string): Promise<number>;
  /** A deploy here went live: share it. */
  deployed(rec: DeployedRecord, bundle: Bundle): Promise<void>;
  /** A removal here: share it. */
  removed(name: string): Promise<void>;
}

/** A deploy that was refused; `status` is the HTTP status to answer with. */
export class DeployError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface ControllerOptions {
  /** State directory: the registry (Deno KV) and deployed function files. */
  stateDir: string;
  modelsDir?: string;
  /** Cores of a fixed gpu-let on `cpu` devices (default 1). */
  coresPerGpulet?: number;
  maxQueueRows?: number;
  depth?: number;
  log?: (line: string) => void;
  /**
   * `cpu` (default: this machine's cores as one device), `cpu:N` (N devices of its cores), `sim:<profile>xN`
   * (N simulated GPUs) or `cuda`; always planned and autoscaled.
   */
  devices?: string;
  /** Time dilation of simulated devices (`--sim-scale`): latencies and SLOs × this. Default 1. */
  simScale?: number;
  /** Where `profiles/<device>.csv` are. Default: the project's `profiles/`. */
  profilesDir?: string;
  /** Autoscaler policy knobs (defaults: DEFAULT_SCALE_POLICY). */
  scale?: ScalePolicyOptions;
  /**
   * A fixed layout: every function on this many gpu-lets of `coresPerGpulet` cores, not sized by the planner
   * (with more than one, a lost batch is retried on another). Unset: functions are planned, and only those
   * whose model has no profile on the device get fixed gpu-lets (one each).
   */
  gpuletsPerFunction?: number;
  /** A batch unanswered this long (ms) means a hung gpu-let, which is killed. Default: max(10 s, 5 × SLO). */
  hangTimeoutMs?: number;
  /**
   * Benchmarks only (no flag): admit every request, never shed (429) nor expire (504), to measure in a
   * shadow run what admission refused that would have met its SLO.
   */
  admitAll?: boolean;
  /** A gpu-let not loaded and warm in this long (ms) fails to start (a deploy is refused). Default 120 s. */
  startTimeoutMs?: number;
  /** `cuda`: use the running MPS daemon (default) or start gpulet's own under the state directory. */
  mps?: MpsMode;
  /** `cuda`: the profile to plan with (default: from the GPUs' type). */
  profile?: string;
  /** `cuda`: device memory per worker process besides its model (MiB). Default 600. */
  gpuContextMiB?: number;
  /** `cuda`: how `nvidia-smi` and the MPS control are run (tests give captured outputs). */
  cudaRunner?: CommandRunner;
}

/** The project's profiles directory. */
export const DEFAULT_PROFILES_DIR = new URL("../../profiles/", import.meta.url).pathname.replace(/\/$/, "");

export class Controller {
  readonly metrics: Metrics;
  private readonly deployments = new Map<string, Deployment>();
  private readonly apps = new Map<string, AppDeployment>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private restoringNow = true;
  private shuttingDown = false;
  private readonly depOpts: DeploymentOptions;
  private readonly appOpts: AppDeploymentOptions;
  /** The planned, autoscaled gpu-lets on the devices. */
  readonly fleet: Fleet;
  private readonly splitTimer: ReturnType<typeof setInterval>;
  private splitting?: Promise<void>;

  private constructor(
    readonly registry: Registry,
    readonly stateDir: string,
    runtimeDir: string,
    private readonly opts: ControllerOptions,
    /** This machine's cores (workers are pinned to them). */
    readonly device: CpuDevice,
    readonly backend: Backend,
  ) {
    this.metrics = new Metrics({
      functions: () =>
        [...this.deployments.values()].map((d) => ({
          name: d.name,
          version: String(d.version),
          queueRows: d.dispatcher.depth,
        })),
      // One gpu-let, one process.
      workers: () => this.fleet.gpuletCount(),
      // Simulated GPUs plan in profile time: real requests/s are timeScale times lower.
      planned: () =>
        this.fleet.plan?.gpus.flatMap((g) =>
          g.gpulets.map((l) => ({
            gpu: g.id,
            part: l.part,
            functions: l.functions.map((f) => ({ name: f.name, rate: f.rate / backend.timeScale })),
          }))
        ) ?? [],
    });
    const fleet = new Fleet({
      backend,
      depth: opts.depth ?? 2,
      scale: opts.scale,
      fixed: {
        gpuletsPerFunction: opts.gpuletsPerFunction ?? 1,
        part: fixedPart(backend, device, opts.coresPerGpulet ?? 1),
        all: opts.gpuletsPerFunction !== undefined,
      },
      log: opts.log ?? (() => {}),
      onWorkerDied: (fn) => this.metrics.workerRestarts.inc({ function: fn }),
      onReplan: (direction) => this.metrics.replans.inc({ direction }),
      stageDemand: (fn) => this.stageDemand(fn),
    });
    this.fleet = fleet;
    this.splitTimer = setInterval(() => this.splitAppsOnce(), APP_SPLIT_MS);
    this.metrics.observeFleet(() => ({ gpus: fleet.gpusInUse(), gpulets: fleet.gpuletCount() }));
    this.depOpts = {
      modelsDir: opts.modelsDir ?? DEFAULT_MODELS_DIR,
      runtimeDir,
      metrics: this.metrics,
      maxQueueRows: opts.maxQueueRows ?? 1024,
      depth: opts.depth ?? 2,
      log: opts.log ?? (() => {}),
      sloScale: backend.timeScale,
      onArrival: (name) => this.fleet.arrived(name),
      hangTimeoutMs: opts.hangTimeoutMs,
      startTimeoutMs: opts.startTimeoutMs,
      admitAll: opts.admitAll,
    };
    this.appOpts = {
      runtimeDir,
      startTimeoutMs: opts.startTimeoutMs,
      log: this.depOpts.log,
      sloScale: backend.timeScale,
      functionNamed: (name) => this.deployments.get(name),
      maxInflight: opts.maxQueueRows ?? 1024,
      onArrival: (name) => this.fleet.arrived(name),
    };
  }

  /** Opens the state directory and registry. Call {@link restore} to bring deployed functions back. */
  static async create(opts: ControllerOptions): Promise<Controller> {
    const spec = parseDevices(opts.devices ?? "cpu");
    await Deno.mkdir(`${opts.stateDir}/functions`, { recursive: true });
    const stateDir = await Deno.realPath(opts.stateDir);
    const registry = await Registry.open(`${stateDir}/registry.sqlite3`);
    // Unix socket paths are limited to ~108 bytes, so sockets live in a short temporary directory.
    const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-" });
    const profiles = opts.profilesDir ?? DEFAULT_PROFILES_DIR;
    const device = new CpuDevice();
    let backend: Backend;
    try {
      if (spec.kind === "sim") backend = await simBackend(spec, profiles, opts.simScale ?? 1);
      else if (spec.kind === "cuda") {
        const setup = await prepareCuda({
          stateDir,
          mps: opts.mps ?? "existing",
          profile: opts.profile,
          profilesDir: profiles,
          ortBinDir: ortBindingPath().replace(/\/[^/]*$/, ""),
          envPipeDir: Deno.env.get("CUDA_MPS_PIPE_DIRECTORY"),
          runner: opts.cudaRunner ?? systemRunner,
        });
        try {
          backend = await cudaBackend(setup, profiles, opts.gpuContextMiB ?? DEFAULT_CONTEXT_MIB);
        } catch (e) {
          await setup.stop();
          throw e;
        }
      } else backend = await cpuBackend(spec.devices, device, profiles);
    } catch (e) {
      registry.close();
      await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
      throw e;
    }
    return new Controller(registry, stateDir, runtimeDir, opts, device, backend);
  }

  private get log(): (line: string) => void {
    return this.depOpts.log;
  }

  /**
   * Starts the live version of every registered function, then of every app (they call the functions).
   * Failures are logged; the rest still start.
   */
  async restore(): Promise<void> {
    try {
      const records = await this.registry.listLive();
      records.sort((a, b) => Number(isAppRecord(a)) - Number(isAppRecord(b)));
      for (const rec of records) {
        try {
          await this.withLock<unknown>(
            rec.name,
            () => isAppRecord(rec) ? this.activateApp(rec) : this.activate(rec),
          );
          this.log(`restored ${rec.name} v${rec.version}`);
        } catch (e) {
          this.log(`could not restore ${rec.name} v${rec.version}: ${e instanceof Error ? e.message : e}`);
        }
      }
    } finally {
      this.restoringNow = false;
    }
  }

  /** True once shutdown began (long-lived streams end). */
  get stopping(): boolean {
    return this.shuttingDown;
  }

  /** True until `restore()` has brought back every deployed function (or given up on it). */
  get restoring(): boolean {
    return this.restoringNow;
  }

  /** True when restore finished and every deployed function has a warm gpu-let. */
  get ready(): boolean {
    return !this.restoringNow && !this.shuttingDown && [...this.deployments.values()].every((d) => d.ready) &&
      // An app whose stage was deleted is not waited for: it answers 503 naming the stage.
      [...this.apps.values()].every((a) => a.running);
  }

  /** The live deployment of `name`. */
  get(name: string): Deployment | undefined {
    return this.deployments.get(name);
  }

  /** All live deployments. */
  list(): Deployment[] {
    return [...this.deployments.values()];
  }

  /**
   * What apps ask of `fn` as a stage, if any use it: the tightest level budget (ms, undilated), and the CV of
   * its grouped calls at the largest measured fan-out (direct calls mixed in only make it smoother).
   */
  private stageDemand(fn: string): { budgetMs: number; arrivalCv?: number } | undefined {
    let budgetMs: number | undefined, dispersion = 1;
    for (const a of this.apps.values()) {
      for (const s of a.stages) {
        if (s.function !== fn) continue;
        budgetMs = Math.min(budgetMs ?? Infinity, a.budgetsMs[s.level]);
        if (s.measuredFanOut > 0) dispersion = Math.max(dispersion, groupDispersion(s.measuredFanOut, 1));
      }
    }
    if (budgetMs === undefined) return undefined;
    const arrivalCv = dispersedCv(dispersion, 1);
    return arrivalCv === undefined ? { budgetMs } : { budgetMs, arrivalCv };
  }

  /** Runs {@link splitApps} unless a run is still going; resolves when the run in progress ends. */
  private splitAppsOnce(): Promise<void> {
    this.splitting ??= this.splitApps().finally(() => (this.splitting = undefined));
    return this.splitting;
  }

  /**
   * Re-splits the SLO of every app of more than one level for its rate (in the planner's worker), and has
   * the fleet plan its stages for the new budgets. An app whose split cannot be made keeps the one it has.
   */
  private async splitApps(): Promise<void> {
    for (const app of this.listApps()) {
      const rate = app.takeRate() * this.backend.timeScale;
      if (app.levels < 2) continue;
      const levels: AppGraph["levels"] = Array.from({ length: app.levels }, () => []);
      for (const s of app.stages) {
        const dep = this.deployments.get(s.function);
        if (!dep) continue;
        const m = dep.record.manifest;
        levels[s.level].push({
          name: `${app.name}.${s.name}`,
          model: m.model,
          maxBatch: m.maxBatch,
          fanOut: s.measuredFanOut,
        });
      }
      if (levels.some((l) => l.length === 0)) continue;
      try {
        const budgets = await this.fleet.splitApp(
          { name: app.name, sloMs: app.record.manifest.sloMs, levels },
          Math.max(rate, MIN_SPLIT_RATE),
        );
        if (!budgets || this.apps.get(app.name) !== app) continue;
        const changed = budgets.some((b, i) => Math.abs(b - app.budgetsMs[i]) > 1e-9);
        app.setBudgets(budgets, "planner");
        if (changed) {
          this.log(
            `app ${app.name}: budgets ${budgets.map((b) => b.toFixed(0)).join(" + ")} ms at ${rate.toFixed(1)}/s`,
          );
          this.fleet.refreshFunctions();
        }
      } catch (e) {
        this.log(`app ${app.name}: SLO split failed (${e instanceof Error ? e.message : e}); budgets kept`);
      }
    }
  }

  /** The live version of app `name`. */
  getApp(name: string): AppDeployment | undefined {
    return this.apps.get(name);
  }

  /** All live apps. */
  listApps(): AppDeployment[] {
    return [...this.apps.values()];
  }

  /** Serialises deploys/removals of one name. */
  private withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    this.locks.set(name, next);
    return next;
  }

  private async ensureModel(rec: FunctionRecord): Promise<void> {
    const m = rec.manifest.model;
    if (!isBundledModel(m) && ZOO[m]) await ensureModels([m], this.depOpts.modelsDir, this.log);
    try {
      await Deno.stat(modelPath(rec, this.depOpts.modelsDir));
    } catch {
      const known = Object.keys(ZOO).join(", ");
      throw new DeployError(
        400,
        isBundledModel(m) ? `model file "${m}" is not in the bundle` : `unknown model "${m}" (zoo models: ${known})`,
      );
    }
  }

  /** Places `rec` through the fleet (its gpu-lets start as the plan says) and makes it live. */
  private async place(rec: FunctionRecord): Promise<Deployment> {
    // Simulated devices need no model file; the others check it first (its absence is the clearer error).
    if (this.backend.kind !== "sim") await this.ensureModel(rec);
    const refused = this.backend.refuse(rec.manifest.model);
    if (refused) {
      throw new DeployError(400, `function ${rec.name} cannot be served on ${this.backend.device}: ${refused}`);
    }
    if (this.backend.kind !== "sim") {
      const size = (await Deno.stat(modelPath(rec, this.depOpts.modelsDir))).size;
      this.backend.noteModel?.(rec.manifest.model, size);
    }
    const dep = new Deployment(rec, this.depOpts);
    try {
      await this.fleet.place(dep);
    } catch (e) {
      if (e instanceof WorkerStartError) {
        throw new DeployError(400, `function ${rec.name} cannot be served (${e.stage}): ${e.message}`);
      }
      throw e;
    }
    return dep;
  }

  /** Starts `rec` and makes it live, replacing (and draining) the previous version. */
  private async activate(rec: FunctionRecord): Promise<Deployment> {
    const dep = await this.place(rec);
    const old = this.deployments.get(rec.name);
    this.deployments.set(rec.name, dep);
    // The old version keeps its queue and in-flight batches until they are served.
    if (old) old.stop(true).then(() => this.log(`${rec.name} v${old.version} drained and stopped`));
    return dep;
  }

  /** Starts app `rec` (its process) and makes it live, replacing (and draining) the previous version. */
  private async activateApp(rec: AppRecord): Promise<AppDeployment> {
    const app = new AppDeployment(rec, {
      ...this.appOpts,
      observer: this.metrics.observerFor(rec.name, String(rec.version)),
    });
    try {
      await app.start();
    } catch (e) {
      if (e instanceof WorkerStartError) {
        throw new DeployError(400, `app ${rec.name} cannot be served (${e.stage}): ${e.message}`);
      }
      throw e;
    }
    const old = this.apps.get(rec.name);
    this.apps.set(rec.name, app);
    this.fleet.refreshFunctions();
    if (app.levels > 1) this.splitAppsOnce();
    if (old) old.stop().then(() => this.log(`app ${rec.name} v${old.version} drained and stopped`));
    return app;
  }

  /** Refuses a bundle whose name is taken by the other kind, or an app whose stages are not deployed. */
  private checkDeployable(bundle: Bundle): void {
    const name = bundle.manifest.name;
    if (isAppBundle(bundle)) {
      if (this.deployments.has(name)) throw new DeployError(409, `"${name}" is a deployed function, not an app`);
      const missing = bundle.manifest.stages.filter((s) => !this.deployments.has(s.function));
      if (missing.length) {
        throw new DeployError(
          400,
          `app ${name} needs its stages' functions deployed first: ${
            missing.map((s) => `${s.name} → "${s.function}"`).join(", ")
          } (deno task deploy deploys them from the app's sibling folders)`,
        );
      }
    } else if (this.apps.has(name)) throw new DeployError(409, `"${name}" is a deployed app, not a function`);
  }

  /** Where deploys and removals are shared (set once, by a cluster, before {@link restore}). */
  replication?: Replication;

  /**
   * Deploys a validated bundle as a new version; the old version serves until the new one is warm. `version`
   * is given when another node deployed it (it is then not shared again).
   */
  deploy(bundle: Bundle, o: { version?: number } = {}): Promise<DeployedRecord> {
    if (this.shuttingDown) return Promise.reject(new DeployError(503, "the controller is shutting down"));
    const name = bundle.manifest.name;
    return this.withLock(name, async () => {
      this.checkDeployable(bundle);
      let version: number;
      if (o.version !== undefined) {
        version = o.version;
        await this.registry.takeVersion(name, version);
      } else if (this.replication) {
        version = await this.replication.nextVersion(name);
        await this.registry.takeVersion(name, version);
      } else version = await this.registry.nextVersion(name);
      const dir = `${this.stateDir}/functions/${name}/v${version}`;
      await writeBundle(bundle, dir);
      const rec = {
        name,
        version,
        manifest: bundle.manifest,
        dir,
        deployedAt: new Date().toISOString(),
      } as DeployedRecord;
      try {
        if (isAppRecord(rec)) await this.activateApp(rec);
        else await this.activate(rec);
      } catch (e) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        throw e;
      }
      await this.registry.putVersion(rec);
      await this.registry.setLive(name, version);
      this.log(`deployed ${name} v${version}`);
      if (o.version === undefined) await this.replication?.deployed(rec, bundle);
      return rec;
    });
  }

  /**
   * Takes the running function or app `name` out of service (the caller holds its lock): no new requests
   * reach it, `registryStep` records why (removed, unloaded), then it drains and stops and its gpu-lets go.
   */
  private async takeDown(name: string, registryStep: () => Promise<void>): Promise<void> {
    const dep = this.deployments.get(name);
    const app = this.apps.get(name);
    this.deployments.delete(name);
    this.apps.delete(name);
    if (app) this.fleet.refreshFunctions();
    await registryStep();
    await app?.stop();
    await dep?.stop(true);
    if (dep) await this.fleet.unplace(name);
  }

  /**
   * Removes a function: drains and stops it, forgets it. False if unknown. `shared`: another node removed
   * it (the removal is not shared again).
   */
  remove(name: string, o: { shared?: boolean } = {}): Promise<boolean> {
    return this.withLock(name, async () => {
      const running = this.deployments.has(name) || this.apps.has(name);
      // An unloaded one is removed too: its bundle and records are still there.
      if (!running && !(await this.registry.live(name) ?? await this.registry.unloaded(name))) return false;
      await this.takeDown(name, () => this.registry.remove(name));
      await Deno.remove(`${this.stateDir}/functions/${name}`, { recursive: true }).catch(() => {});
      this.log(`removed ${name}`);
      if (!o.shared) await this.replication?.removed(name);
      return true;
    });
  }

  /**
   * Unloads a function or app (the repository API): it drains and stops like `remove`, but its bundle stays
   * registered, so `load` brings the same version back (also after a restart). A 404 DeployError if
   * nothing of that name is live.
   */
  unload(name: string): Promise<void> {
    return this.withLock(name, async () => {
      if (!this.deployments.has(name) && !this.apps.has(name)) throw new DeployError(404, `"${name}" is not loaded`);
      await this.takeDown(name, () => this.registry.unload(name).then(() => {}));
      this.log(`unloaded ${name}`);
    });
  }

  /**
   * Loads a registered function or app (the repository API): an unloaded one starts again at the version it
   * had; a live one stays as it is (bundles do not change once deployed). A 404 DeployError if `name` was
   * never deployed, or was removed.
   */
  load(name: string): Promise<RepositoryEntry> {
    if (this.shuttingDown) return Promise.reject(new DeployError(503, "the controller is shutting down"));
    return this.withLock(name, async () => {
      if (!this.deployments.has(name) && !this.apps.has(name)) {
        // Unloaded, or live in the registry but not running (its start failed at restore): start it.
        const rec = await this.registry.unloaded(name) ?? await this.registry.live(name);
        if (!rec) throw new DeployError(404, `"${name}" is not registered: deploy it first (deno task deploy)`);
        if (isAppRecord(rec)) await this.activateApp(rec);
        else await this.activate(rec);
        await this.registry.setLive(name, rec.version);
        this.log(`loaded ${name} v${rec.version}`);
      }
      return this.entryOf(name)!;
    });
  }

  /** The repository entry of a running function or app. */
  private entryOf(name: string): RepositoryEntry | undefined {
    const d = this.deployments.get(name);
    if (d) return { name, version: String(d.version), state: d.ready ? "READY" : "LOADING", reason: "" };
    const a = this.apps.get(name);
    if (!a) return undefined;
    const state = a.ready ? "READY" : a.running ? "LOADING" : "UNAVAILABLE";
    return { name, version: String(a.version), state, reason: a.running ? "" : "a stage is missing" };
  }

  /**
   * The repository index: every registered function and app, with its state (READY, LOADING while its
   * gpu-lets warm up, UNAVAILABLE when unloaded) and why, where there is a reason.
   */
  async repositoryIndex(): Promise<RepositoryEntry[]> {
    const entries = [...this.deployments.keys(), ...this.apps.keys()].map((n) => this.entryOf(n)!);
    for (const rec of await this.registry.listLive()) {
      if (this.deployments.has(rec.name) || this.apps.has(rec.name)) continue;
      const reason = this.restoringNow ? "being restored" : "it did not start (see the log); load retries";
      entries.push({
        name: rec.name,
        version: String(rec.version),
        state: this.restoringNow ? "LOADING" : "UNAVAILABLE",
        reason,
      });
    }
    for (const rec of await this.registry.listUnloaded()) {
      entries.push({ name: rec.name, version: String(rec.version), state: "UNAVAILABLE", reason: "unloaded" });
    }
    return entries.sort((x, y) => x.name.localeCompare(y.name));
  }

  /** The running plan (`GET /admin/plan`, `/ui`): the plan in force, its gpu-lets' processes, its history. */
  plan(): RunningPlan {
    return { ...this.fleet.describe(), apps: this.listApps().map((a) => a.describe()) };
  }

  /** The devices (`GET /admin/devices`). */
  devices() {
    const b = this.backend;
    if (b.kind === "sim") {
      return Array.from({ length: b.gpus }, (_, id) => ({ id, kind: `sim:${b.device}`, timeScale: b.timeScale }));
    }
    if (b.kind === "cpu") {
      return Array.from({ length: b.gpus }, (_, id) => ({ id, kind: "cpu", profile: "cpu" }))
        .map((d) => ({ ...d, coresOfMachine: this.device.coreCount, load: this.device.load() }));
    }
    return Array.from({ length: b.gpus }, (_, id) => ({ id, kind: "cuda", profile: b.device }));
  }

  /**
   * Stops admitting, serves what was accepted (up to `drainTimeoutMs`), stops every worker, closes the
   * registry. Idempotent.
   */
  async shutdown(drainTimeoutMs = 30_000): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    clearInterval(this.splitTimer);
    await this.splitting;
    // Apps first: their requests still call the functions while they drain.
    await Promise.all(this.listApps().map((a) => a.stop(drainTimeoutMs)));
    this.apps.clear();
    await Promise.all(this.list().map((d) => d.stop(true, drainTimeoutMs)));
    await this.fleet.close();
    await this.backend.close?.();
    this.deployments.clear();
    this.registry.close();
    await Deno.remove(this.depOpts.runtimeDir, { recursive: true }).catch(() => {});
  }
}

/** How often apps' SLO splits are re-made for their rates (ms). */
const APP_SPLIT_MS = 5_000;
/** The rate (app requests/s, profile time) a split is made for at least: an idle app still gets one. */
const MIN_SPLIT_RATE = 1;

/** Part (%) of a fixed gpu-let: `cores` of a cpu device's cores; the default part elsewhere. */
function fixedPart(backend: Backend, device: CpuDevice, cores: number): number {
  if (backend.kind !== "cpu") return DEFAULT_FIXED_LAYOUT.part;
  const perDevice = Math.max(1, Math.floor(device.coreCount / backend.gpus));
  return Math.min(100, Math.round((100 * Math.min(cores, perDevice)) / perDevice));
}
