/**
 * The controller: deploys function bundles (registry in Deno KV, files under the state directory), keeps
 * one live {@link Deployment} per function, restores them at start-up, and shuts everything down cleanly.
 */
import { Metrics } from "../admission/metrics.ts";
import { type Bundle, writeBundle } from "../functions/bundle.ts";
import { isBundledModel } from "../functions/manifest.ts";
import { type FunctionRecord, Registry } from "../functions/registry.ts";
import { DEFAULT_MODELS_DIR, ensureModels, ZOO } from "../models/zoo.ts";
import { CpuDevice } from "../runtime/cpu_device.ts";
import { WorkerStartError } from "../runtime/worker.ts";
import { Deployment, type DeploymentOptions, modelPath } from "./deployment.ts";

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
  coresPerGpulet?: number;
  maxQueueRows?: number;
  depth?: number;
  log?: (line: string) => void;
}

export class Controller {
  readonly metrics: Metrics;
  readonly device = new CpuDevice();
  private readonly deployments = new Map<string, Deployment>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private restoring = true;
  private shuttingDown = false;
  private readonly depOpts: DeploymentOptions;

  private constructor(
    readonly registry: Registry,
    readonly stateDir: string,
    runtimeDir: string,
    private readonly opts: ControllerOptions,
  ) {
    this.metrics = new Metrics(
      () => new Map([...this.deployments].map(([n, d]) => [n, d.dispatcher.depth])),
      () => [...this.deployments.values()].reduce((n, d) => n + d.dispatcher.getSlots().length, 0),
    );
    this.depOpts = {
      modelsDir: opts.modelsDir ?? DEFAULT_MODELS_DIR,
      runtimeDir,
      device: this.device,
      metrics: this.metrics,
      coresPerGpulet: opts.coresPerGpulet ?? 1,
      maxQueueRows: opts.maxQueueRows ?? 1024,
      depth: opts.depth ?? 2,
      log: opts.log ?? (() => {}),
    };
  }

  /** Opens the state directory and registry. Call {@link restore} to bring deployed functions back. */
  static async create(opts: ControllerOptions): Promise<Controller> {
    await Deno.mkdir(`${opts.stateDir}/functions`, { recursive: true });
    const stateDir = await Deno.realPath(opts.stateDir);
    const registry = await Registry.open(`${stateDir}/registry.sqlite3`);
    // Unix socket paths are limited to ~108 bytes, so sockets live in a short temporary directory.
    const runtimeDir = await Deno.makeTempDir({ prefix: "gpulet-" });
    return new Controller(registry, stateDir, runtimeDir, opts);
  }

  private get log(): (line: string) => void {
    return this.depOpts.log;
  }

  /** Starts the live version of every registered function. Failures are logged; the rest still start. */
  async restore(): Promise<void> {
    try {
      const records = await this.registry.listLive();
      for (const rec of records) {
        try {
          await this.withLock(rec.name, () => this.activate(rec));
          this.log(`restored ${rec.name} v${rec.version}`);
        } catch (e) {
          this.log(`could not restore ${rec.name} v${rec.version}: ${e instanceof Error ? e.message : e}`);
        }
      }
    } finally {
      this.restoring = false;
    }
  }

  /** True when restore finished and every deployed function has a warm gpu-let. */
  get ready(): boolean {
    return !this.restoring && !this.shuttingDown && [...this.deployments.values()].every((d) => d.ready);
  }

  /** The live deployment of `name`. */
  get(name: string): Deployment | undefined {
    return this.deployments.get(name);
  }

  /** All live deployments. */
  list(): Deployment[] {
    return [...this.deployments.values()];
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

  /** Starts `rec` and makes it live, replacing (and draining) the previous version. */
  private async activate(rec: FunctionRecord): Promise<Deployment> {
    await this.ensureModel(rec);
    const dep = new Deployment(rec, this.depOpts);
    try {
      await dep.start();
    } catch (e) {
      if (e instanceof WorkerStartError) {
        throw new DeployError(400, `function ${rec.name} cannot be served (${e.stage}): ${e.message}`);
      }
      throw e;
    }
    const old = this.deployments.get(rec.name);
    this.deployments.set(rec.name, dep);
    // The old version keeps its queue and in-flight batches until they are served.
    if (old) old.stop(true).then(() => this.log(`${rec.name} v${old.version} drained and stopped`));
    return dep;
  }

  /** Deploys a validated bundle as a new version; the old version serves until the new one is warm. */
  deploy(bundle: Bundle): Promise<FunctionRecord> {
    if (this.shuttingDown) return Promise.reject(new DeployError(503, "the controller is shutting down"));
    const name = bundle.manifest.name;
    return this.withLock(name, async () => {
      const version = await this.registry.nextVersion(name);
      const dir = `${this.stateDir}/functions/${name}/v${version}`;
      await writeBundle(bundle, dir);
      const rec: FunctionRecord = {
        name,
        version,
        manifest: bundle.manifest,
        dir,
        deployedAt: new Date().toISOString(),
      };
      try {
        await this.activate(rec);
      } catch (e) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        throw e;
      }
      await this.registry.putVersion(rec);
      await this.registry.setLive(name, version);
      this.log(`deployed ${name} v${version}`);
      return rec;
    });
  }

  /** Removes a function: drains and stops it, forgets it. False if unknown. */
  remove(name: string): Promise<boolean> {
    return this.withLock(name, async () => {
      const dep = this.deployments.get(name);
      const rec = await this.registry.live(name);
      if (!dep && !rec) return false;
      this.deployments.delete(name);
      await this.registry.remove(name);
      await dep?.stop(true);
      await Deno.remove(`${this.stateDir}/functions/${name}`, { recursive: true }).catch(() => {});
      this.log(`removed ${name}`);
      return true;
    });
  }

  /** The live layout (`GET /admin/plan`): one CPU device, its gpu-lets, the functions on them. */
  plan() {
    const cores = this.device.coreCount;
    const gpulets = this.list().flatMap((d) =>
      d.describe().map((g) => ({
        part: Math.round((100 * g.cores.length) / cores),
        cores: g.cores,
        pid: g.pid,
        functions: [{
          name: d.name,
          version: d.version,
          batch: g.batch,
          maxDelayMs: g.maxDelayMs,
          sloMs: d.record.manifest.sloMs,
          latencyMs: g.latencyMs[String(g.batch)] ?? null,
        }],
      }))
    );
    return {
      policy: "static",
      device: "cpu",
      feasible: true,
      gpusUsed: gpulets.length ? 1 : 0,
      gpus: [{ id: 0, kind: "cpu", cores, gpulets }],
      unserved: [],
    };
  }

  /**
   * Stops admitting, serves what was accepted (up to `drainTimeoutMs`), stops every worker, closes the
   * registry. Idempotent.
   */
  async shutdown(drainTimeoutMs = 30_000): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    await Promise.all(this.list().map((d) => d.stop(true, drainTimeoutMs)));
    this.deployments.clear();
    this.registry.close();
    await Deno.remove(this.depOpts.runtimeDir, { recursive: true }).catch(() => {});
  }
}
