/**
 * One node's part in a gpulet cluster on NATS JetStream (`start --cluster nats://…`):
 * - membership by heartbeats (`membership.ts`), a leader by compare-and-set with a fencing epoch
 *   (`leadership.ts`);
 * - deploy once: a deploy on any node stores its bundle in the object store and its record in KV under
 *   `fn.<name>`; every node watches those records and deploys each version from the store, with the
 *   cluster's version number, so every node can serve every function (each keeps it warm on at least one
 *   gpu-let of its own, which is what lets survivors take over at once when a node dies);
 * - the cluster plan (`cluster_plan.ts`): the leader plans the fewest GPUs for the demand summed over every
 *   front door and writes it to KV under `plan`; every node routes by the latest plan of the latest epoch;
 * - routing: any node takes any data-plane request and serves it, or forwards it (`forwarding.ts`) to a node
 *   among those the plan has serving it, shared by their GPUs with two choices on their queues; a request a
 *   dead node never took is retried once elsewhere.
 */
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { z } from "zod";
import { type Controller, DeployError } from "../controller/controller.ts";
import type { DeployedRecord } from "../functions/registry.ts";
import { type Bundle, parseBundle } from "../functions/bundle.ts";
import { describeZodError } from "../functions/manifest.ts";
import { RateMonitor } from "../autoscaler/rate_monitor.ts";
import type { ClusterSummary } from "../observability/dashboard_state.ts";
import { seededRandom } from "../planner/random.ts";
import { DEAD_AFTER_MS, Membership, type NodeInfo } from "./membership.ts";
import { type LeaderRecord, Leadership } from "./leadership.ts";
import { type ClusterFunction, ClusterPlan, clusterProblem, sliceCluster } from "./cluster_plan.ts";
import { RemotePlanner } from "../autoscaler/remote_planner.ts";
import type { Plan } from "../planner/plan.ts";
import { forward, FORWARDED_HEADER, type ForwardOutcome, serveForwarded } from "./forwarding.ts";

/** The KV bucket of the cluster's state, and the object store of its bundles. */
export const STATE_BUCKET = "gpulet";
export const BUNDLE_STORE = "gpulet-bundles";
/** How often the leader looks whether to plan again (ms). */
const PLAN_CHECK_MS = 500;
/** A demand down by this share of what the plan was made for is planned again (its GPUs may go). */
const DEMAND_DROP = 0.3;
/** Spare capacity the cluster plan keeps over the demand (less when the GPUs cannot take it). */
const CLUSTER_HEADROOM = 0.25;
/** Plans kept in the KV history of `plan` (what `/admin/cluster` shows). */
const PLAN_HISTORY = 20;
/** Tries of a deploy's reads and writes of the cluster's state before it is answered 503. */
const STATE_ATTEMPTS = 8;
/** Leaving waits this long for pending replies to flush (ms). */
const LEAVE_WAIT_MS = 3000;
/** A forwarded request without an SLO to go by waits this long for its answer (ms). */
const DEFAULT_ANSWER_WITHIN_MS = 60_000;

/** A deployed function or app, as `fn.<name>` records it. */
const FunctionEntry = z.object({
  name: z.string(),
  version: z.number().int().positive(),
  object: z.string(),
  node: z.string(),
  deployedAt: z.string(),
});
type FunctionEntry = z.infer<typeof FunctionEntry>;

export interface ClusterOptions {
  /** NATS server URLs. */
  servers: string[];
  /** This node's name. */
  node: string;
  /** This node's HTTP base URL (peers send bodies too large for NATS there). */
  url: string;
  /** JetStream replicas of the state bucket and the bundle store. Default: 3 with ≥ 3 servers, else 1. */
  replicas?: number;
  /** Largest request body forwarded (the data plane's limit). */
  maxBodyBytes: number;
  log?: (line: string) => void;
}

/** The data-plane paths a front door routes, and the function each names. */
const ROUTED = [
  /^\/functions\/([^/]+)\/invoke$/,
  /^\/v2\/models\/([^/]+)(?:\/versions\/[^/]+)?\/infer$/,
  // A gRPC ModelInfer call, as the gRPC side hands it to the front door (src/api/grpc/server.ts).
  /^\/internal\/grpc\/infer\/([^/]+)$/,
];

/** The function a data-plane request names, or undefined for every other request. */
export function routedFunction(method: string, path: string): string | undefined {
  if (method !== "POST") return undefined;
  for (const re of ROUTED) {
    const m = re.exec(path);
    if (m) return decodeURIComponent(m[1]);
  }
  return undefined;
}

/** Counts of what this node's front door did with requests, for `/admin/cluster` and `/metrics`. */
export interface RoutingCounts {
  local: number;
  forwarded: number;
  retried: number;
  lost: number;
}

/** NATS could not be reached at start (a setup problem: `start` says so and exits 2). */
export class ClusterJoinError extends Error {}

/** This node in the cluster. Made by {@link Cluster.join}; {@link leave} stops it. */
export class Cluster {
  private membership!: Membership;
  private leadership!: Leadership;
  private plan?: ClusterPlan;
  private seq = 0;
  private lastPlanned?: { nodes: string; functions: string; demand: Record<string, number> };
  private planning = false;
  private rawPlan?: Plan;
  private planner?: { gpus: number; worker: RemotePlanner };
  private readonly demand = new RateMonitor();
  private readonly subs: Subscription[] = [];
  private readonly stops: (() => void)[] = [];
  private planTimer?: ReturnType<typeof setInterval>;
  private readonly random = seededRandom(Date.now() >>> 0);
  private syncing: Promise<void> = Promise.resolve();
  private readonly waitingApps = new Map<string, FunctionEntry>();
  /** Requests this node forwarded and has no answer for yet, per node and function. */
  private readonly sent = new Map<string, Map<string, number>>();
  /** Functions and apps the cluster has (its `fn.*` records). */
  private readonly known = new Set<string>();
  readonly counts: RoutingCounts = { local: 0, forwarded: 0, retried: 0, lost: 0 };
  private readonly startedAt = new Date().toISOString();
  private connected = true;
  private synced = false;

  private constructor(
    readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly store: ObjectStore,
    private readonly controller: Controller,
    private readonly opts: ClusterOptions,
    /** JetStream replicas of what the cluster stores. */
    readonly replicas: number,
  ) {}

  /**
   * Connects to NATS, opens the cluster's KV bucket and object store, and makes deploys and removals on
   * this node shared. Call before the controller restores its functions; then {@link start}.
   */
  static async join(controller: Controller, opts: ClusterOptions): Promise<Cluster> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: opts.servers,
        name: `gpulet-${opts.node}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
    } catch (e) {
      throw new ClusterJoinError(`cannot reach NATS at ${opts.servers.join(",")}: ${(e as Error).message}`);
    }
    const replicas = opts.replicas ?? (opts.servers.length >= 3 ? 3 : 1);
    const kv = await new Kvm(nc).create(STATE_BUCKET, { replicas, history: PLAN_HISTORY });
    const store = await new Objm(nc).create(BUNDLE_STORE, { replicas });
    const cluster = new Cluster(nc, kv, store, controller, opts, replicas);
    controller.replication = {
      nextVersion: (name) => cluster.nextVersion(name),
      deployed: (rec, bundle) => cluster.share(rec, bundle),
      removed: (name) => cluster.unshare(name),
    };
    return cluster;
  }

  /**
   * Starts heartbeats, the election, the plan watch, the function sync and serving forwarded requests
   * with `handle` (this node's own HTTP app). Resolves once the functions the cluster has are deployed here.
   */
  async start(handle: (req: Request) => Promise<Response>): Promise<void> {
    const log = this.opts.log ?? (() => {});
    this.membership = new Membership(this.nc, this.opts.node, () => this.info(), (node, alive) => {
      log(`cluster: node ${node} ${alive ? "joined" : "is gone (no heartbeat for " + DEAD_AFTER_MS + " ms)"}`);
      this.leadership?.check();
    });
    this.membership.start();
    this.controller.metrics.observeCluster(() => ({
      nodesAlive: this.membership.alive().length,
      leader: this.leadership?.isLeader ?? false,
      gpusPlanned: this.plan?.gpusUsed ?? 0,
      gpusTotal: this.plan?.gpusTotal ?? 0,
      routing: { ...this.counts },
    }));
    this.subs.push(serveForwarded(this.nc, this.opts.node, handle));
    this.leadership = new Leadership(this.kv, this.opts.node, this.membership, (leader, isMe) => {
      log(`cluster: leader ${leader.node} (epoch ${leader.epoch})${isMe ? ", this node" : ""}`);
      if (isMe) this.seq = 0;
    });
    await this.leadership.start();
    this.watchConnection();
    await this.watchPlan();
    await this.syncFunctions();
    this.synced = true;
    this.planTimer = setInterval(() => {
      this.leadership.check();
      if (this.leadership.isLeader) this.planIfChanged();
    }, PLAN_CHECK_MS);
  }

  /** Stops everything this node does in the cluster and closes its connection (in-flight replies flushed). */
  async leave(): Promise<void> {
    clearInterval(this.planTimer);
    this.planner?.worker.close();
    this.membership?.stop();
    this.leadership?.stop();
    for (const s of this.stops) s();
    for (const s of this.subs) s.unsubscribe();
    // NATS may be gone: a drain (flush what is pending) waits at most LEAVE_WAIT_MS, then the connection closes.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<void>((r) => (timer = setTimeout(r, LEAVE_WAIT_MS)));
    await Promise.race([this.syncing.catch(() => {}).then(() => this.nc.drain()).catch(() => {}), gaveUp]);
    clearTimeout(timer);
    if (!this.nc.isClosed()) await this.nc.close().catch(() => {});
  }

  /** What this node says of itself in its heartbeats. */
  private info(): NodeInfo {
    const b = this.controller.backend;
    const now = performance.now();
    const demand: Record<string, number> = {};
    // Up fast, down slowly: a plan made for less than what comes puts it all on too few nodes' GPUs.
    for (const d of this.controller.list()) {
      const r = this.demand.rates(d.name, now);
      demand[d.name] = Math.max(r.short, r.smoothed);
    }
    return {
      node: this.opts.node,
      url: this.opts.url,
      startedAt: this.startedAt,
      devices: { kind: b.kind, device: b.device, gpus: b.gpus, timeScale: b.timeScale },
      ready: [
        ...this.controller.list().filter((d) => d.ready).map((d) => d.name),
        ...this.controller.listApps().filter((a) => a.ready).map((a) => a.name),
      ],
      demand,
      queued: Object.fromEntries(this.controller.list().map((d) => [d.name, d.dispatcher.depth])),
      planEpoch: this.plan?.epoch ?? 0,
    };
  }

  // --- Routing ---

  /**
   * A request at this node's front door: served here, or forwarded to the node the plan draws; a request
   * that a node never took is tried once elsewhere. `local` is this node's own HTTP app.
   */
  async route(req: Request, local: (req: Request) => Promise<Response>): Promise<Response> {
    const url = new URL(req.url);
    const fn = routedFunction(req.method, url.pathname);
    if (!fn || req.headers.has(FORWARDED_HEADER)) return local(req);
    this.demand.record(fn, performance.now());
    const first = this.pick(fn);
    if (first === this.opts.node) {
      if (this.known.has(fn) && !this.controller.get(fn) && !this.controller.getApp(fn)) {
        // Deployed in the cluster, not here yet, and no node known to have it ready: soon, not never.
        return Response.json({ error: `"${fn}" is being deployed on this node; retry` }, {
          status: 503,
          headers: { "retry-after": "1" },
        });
      }
      this.counts.local++;
      return local(req);
    }
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.byteLength > this.opts.maxBodyBytes) {
      return Response.json({ error: `request body is larger than the limit of ${this.opts.maxBodyBytes} bytes` }, {
        status: 413,
      });
    }
    const message = { method: req.method, path: url.pathname + url.search, headers: req.headers, body };
    let outcome = await this.forwardTo(first, fn, message);
    if (outcome.kind === "not-started") {
      // It never ran there: once more, elsewhere (here, if this node is what is left).
      this.counts.retried++;
      const second = this.pick(fn, first);
      if (second === this.opts.node) {
        this.counts.local++;
        return local(new Request(req.url, { method: req.method, headers: req.headers, body }));
      }
      outcome = await this.forwardTo(second, fn, message);
    }
    if (outcome.kind === "answered") return outcome.response;
    this.counts.lost++;
    const status = outcome.kind === "lost" ? outcome.status : 503;
    return Response.json({ error: outcome.reason }, { status, headers: status === 503 ? { "retry-after": "1" } : {} });
  }

  private async forwardTo(
    node: string,
    fn: string,
    message: { method: string; path: string; headers: Headers; body: Uint8Array },
  ): Promise<ForwardOutcome> {
    const peer = this.membership.all().find((p) => p.info.node === node);
    if (!peer) return { kind: "not-started", reason: `node ${node} is not known` };
    this.counts.forwarded++;
    const sent = this.sent.get(node) ?? this.sent.set(node, new Map()).get(node)!;
    sent.set(fn, (sent.get(fn) ?? 0) + 1);
    // The answer is due by the function's SLO (when this node knows it), with room for the hops.
    const dep = this.controller.get(fn);
    const within = dep ? Math.max(2 * dep.deadlineMs + 1000, 5000) : DEFAULT_ANSWER_WITHIN_MS;
    try {
      return await forward(
        this.nc,
        this.opts.node,
        {
          node,
          url: peer.info.url,
          alive: () => this.membership.isAlive(node),
        },
        message,
        within,
      );
    } finally {
      sent.set(fn, sent.get(fn)! - 1);
    }
  }

  /**
   * The node to serve `fn`, among the live nodes that have it ready (`not` left out: a node that just failed
   * to take it). With a plan for it: two drawn from the nodes the plan has serving it, weighted by their
   * GPUs, and of the two the one with less waiting per GPU (its last heartbeat's queue plus what this node
   * sent it since), so each runs as busy as the others and one that falls behind gets less until it catches
   * up. Without a plan for it: the less loaded of two drawn evenly, this node winning ties; with none ready,
   * this node (which then answers 404 or 503 itself).
   */
  private pick(fn: string, not?: string): string {
    const me = this.opts.node;
    const ready = new Map(this.membership.alive().filter((n) => n.ready.includes(fn)).map((n) => [n.node, n]));
    if (not) ready.delete(not);
    const waiting = (node: string) =>
      (node === me ? this.controller.get(fn)?.dispatcher.depth ?? 0 : ready.get(node)?.queued[fn] ?? 0) +
      (this.sent.get(node)?.get(fn) ?? 0);
    // The plan says which nodes serve fn; they share it by their GPUs, so each runs as busy as the others
    // (the plan's own slices fill some nodes to the brim and leave the last one light).
    const gpusOf = new Map((this.plan?.nodes ?? []).map((n) => [n.name, n.gpus]));
    const routes = (this.plan?.routes[fn] ?? []).filter((r) => ready.has(r.node) && r.rate > 0)
      .map((r) => ({ node: r.node, rate: gpusOf.get(r.node) ?? 1 }));
    const total = routes.reduce((s, r) => s + r.rate, 0);
    if (total > 0) {
      const draw = () => {
        let x = this.random() * total;
        for (const r of routes) {
          x -= r.rate;
          if (x <= 0) return r;
        }
        return routes[routes.length - 1];
      };
      const a = draw(), b = draw();
      if (a === b) return a.node;
      return waiting(a.node) / a.rate <= waiting(b.node) / b.rate ? a.node : b.node;
    }
    if (ready.size === 0) return me;
    const names = [...ready.keys()];
    const a = names[Math.floor(this.random() * names.length)];
    const b = ready.has(me) ? me : names[Math.floor(this.random() * names.length)];
    return waiting(b) <= waiting(a) ? b : a;
  }

  // --- The plan ---

  /** Follows the NATS connection's state (readiness says when it is down). */
  private watchConnection(): void {
    (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === "disconnect") this.connected = false;
        if (s.type === "reconnect") this.connected = true;
      }
    })().catch(() => {});
  }

  private async watchPlan(): Promise<void> {
    const watch = await this.kv.watch({ key: "plan" });
    this.stops.push(() => watch.stop());
    (async () => {
      for await (const e of watch) {
        if (e.operation !== "PUT") continue;
        const parsed = ClusterPlan.safeParse(e.json());
        if (parsed.success) this.adopt(parsed.data);
      }
    })().catch(() => {});
  }

  /** Follows `plan` unless an older leader made it (fencing) or it is older than the one followed. */
  private adopt(plan: ClusterPlan): void {
    const leaderEpoch = this.leadership.leader?.epoch ?? 0;
    if (plan.epoch < leaderEpoch) return;
    if (this.plan && (plan.epoch < this.plan.epoch || (plan.epoch === this.plan.epoch && plan.seq <= this.plan.seq))) {
      return;
    }
    this.plan = plan;
    this.opts.log?.(
      `cluster: plan ${plan.epoch}.${plan.seq} by ${plan.leader}: ${plan.gpusUsed} of ${plan.gpusTotal} GPUs, ` +
        plan.nodes.filter((n) => n.gpusUsed > 0).map((n) => `${n.name} ${n.gpusUsed}`).join(", "),
    );
  }

  /**
   * The leader: plans again when the live nodes, the functions or the demand changed; in a worker (a plan
   * takes tens of ms, which would stall this node's requests), incrementally from the last plan while the
   * nodes stay the same (so routes move as little as the demand needs).
   */
  private async planIfChanged(): Promise<void> {
    if (this.planning) return;
    const leader = this.leadership.leader as LeaderRecord;
    const nodes = this.membership.alive();
    const b = this.controller.backend;
    const demand: Record<string, number> = {};
    for (const n of nodes) for (const [fn, r] of Object.entries(n.demand)) demand[fn] = (demand[fn] ?? 0) + r;
    const functions: ClusterFunction[] = this.controller.list()
      .filter((d) => b.latency.has(d.record.manifest.model))
      .map((d) => ({
        name: d.name,
        model: d.record.manifest.model,
        sloMs: d.record.manifest.sloMs,
        maxBatch: d.record.manifest.maxBatch,
        demand: demand[d.name] ?? 0,
      }));
    const key = {
      nodes: nodes.map((n) => `${n.node}:${n.devices.device}x${n.devices.gpus}`).sort().join(","),
      functions: functions.map((f) => f.name).sort().join(","),
      demand,
    };
    const mine = this.plan?.epoch === leader.epoch;
    const last = this.lastPlanned;
    const sameNodes = last?.nodes === key.nodes;
    if (mine && last && sameNodes && last.functions === key.functions && !moved(last.demand, demand)) return;
    this.lastPlanned = key;
    const planNodes = nodes.map((n) => ({
      name: n.node,
      device: n.devices.device,
      gpus: n.devices.gpus,
      timeScale: n.devices.timeScale,
    }));
    const problem = clusterProblem(planNodes, functions, b.device);
    this.planning = true;
    try {
      let raw: Plan | undefined;
      if (problem.functions.length > 0 && problem.gpusTotal > 0) {
        raw = await this.plannerFor(problem.gpusTotal).plan({
          functions: problem.functions,
          // GPU ids are renumbered when nodes come or go: then plan afresh.
          current: sameNodes && mine ? this.rawPlan : undefined,
          compact: true,
          // Slices with room for the demand's swings (as the one-node autoscaler keeps), so a node is not
          // sent more than its GPUs take before the next plan.
          headroom: CLUSTER_HEADROOM,
        });
      }
      this.rawPlan = raw;
      const plan = sliceCluster(problem, raw, planNodes, b.device, {
        epoch: leader.epoch,
        seq: ++this.seq,
        leader: this.opts.node,
        at: new Date().toISOString(),
      });
      await this.kv.put("plan", JSON.stringify(plan));
    } catch (e) {
      this.lastPlanned = undefined; // try again at the next check
      this.opts.log?.(`cluster: could not make or write the plan: ${(e as Error).message}`);
    } finally {
      this.planning = false;
    }
  }

  /** The leader's planner worker for a cluster of `gpus` GPUs (made again when that changes). */
  private plannerFor(gpus: number): RemotePlanner {
    if (this.planner?.gpus !== gpus) {
      this.planner?.worker.close();
      const b = this.controller.backend;
      const worker = new RemotePlanner({
        device: b.device,
        gpus,
        latency: b.latency,
        interference: b.interference,
        policy: b.interference ? "gpulet" : "gpulet-noint",
      }, this.opts.log);
      this.planner = { gpus, worker };
    }
    return this.planner.worker;
  }

  // --- Deploy once ---

  /**
   * The next cluster-wide version of `name` (compare-and-set on `version.<name>`); a 503 when the cluster's
   * state does not answer (no leader of its stream, NATS gone) rather than a deploy that hangs.
   */
  private async nextVersion(name: string): Promise<number> {
    const key = `version.${name}`;
    let last: unknown;
    for (let attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
      try {
        const cur = await this.kv.get(key);
        if (!cur || cur.operation !== "PUT") {
          await this.kv.create(key, "1");
          return 1;
        }
        const next = Number(cur.string()) + 1;
        await this.kv.update(key, String(next), cur.revision);
        return next;
      } catch (e) {
        last = e; // another node took that number (read again), or the state is unavailable for now
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
    throw new DeployError(503, `the cluster's state gave "${name}" no version: ${(last as Error)?.message}; retry`);
  }

  /**
   * A deploy here: its bundle into the store, its record into KV (the other nodes deploy it from there).
   * When the cluster's state does not take it, the deploy stands here and is answered 503 saying so.
   */
  private async share(rec: DeployedRecord, bundle: Bundle): Promise<void> {
    const object = `${rec.name}/v${rec.version}`;
    const entry: FunctionEntry = {
      name: rec.name,
      version: rec.version,
      object,
      node: this.opts.node,
      deployedAt: rec.deployedAt,
    };
    let last: unknown;
    for (let attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
      try {
        await this.store.putBlob({ name: object }, new TextEncoder().encode(JSON.stringify(bundle)));
        await this.kv.put(`fn.${rec.name}`, JSON.stringify(entry));
        return;
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
    throw new DeployError(
      503,
      `${rec.name} v${rec.version} is deployed on ${this.opts.node} but the cluster did not take it ` +
        `(${(last as Error)?.message}): deploy it again to share it`,
    );
  }

  private async unshare(name: string): Promise<void> {
    await this.kv.delete(`fn.${name}`);
  }

  /** Deploys what the cluster has (now, and as it changes); resolves when the current records are applied. */
  private async syncFunctions(): Promise<void> {
    const watch = await this.kv.watch({ key: "fn.>" });
    this.stops.push(() => watch.stop());
    let caughtUp!: () => void;
    const current = new Promise<void>((r) => (caughtUp = r));
    (async () => {
      for await (const e of watch) {
        const name = e.key.slice("fn.".length);
        if (e.operation === "PUT") this.known.add(name);
        else this.known.delete(name);
        const step = e.operation === "PUT" ? () => this.apply(e.json()) : () => this.removeHere(name);
        this.syncing = this.syncing.then(step).catch((err) => {
          this.opts.log?.(`cluster: could not apply ${e.key}: ${(err as Error).message}`);
        });
        if (e.delta === 0) this.syncing.then(() => caughtUp()); // the last record there was at the start
      }
    })().catch(() => {});
    // No records: the watch sends nothing, so there is nothing to wait for.
    let records = 0;
    for await (const _ of await this.kv.keys("fn.>")) records++;
    if (records === 0) caughtUp();
    await Promise.race([current, new Promise((r) => setTimeout(r, 30_000))]);
  }

  /** Deploys a record's version here when this node does not run it yet. */
  private async apply(raw: unknown): Promise<void> {
    const parsed = FunctionEntry.safeParse(raw);
    if (!parsed.success) throw new Error(`bad record: ${describeZodError(parsed.error)}`);
    const entry = parsed.data;
    const live = this.controller.get(entry.name)?.version ?? this.controller.getApp(entry.name)?.version;
    if (live !== undefined && live >= entry.version) return;
    const blob = await this.store.getBlob(entry.object);
    if (!blob) throw new Error(`bundle ${entry.object} is not in the store`);
    const bundle = parseBundle(JSON.parse(new TextDecoder().decode(blob)));
    if (!bundle.success) throw new Error(`bundle ${entry.object}: ${describeZodError(bundle.error)}`);
    try {
      await this.controller.deploy(bundle.data, { version: entry.version });
      this.waitingApps.delete(entry.name);
    } catch (e) {
      // An app whose stages are not here yet: again after the next deploy.
      if (/needs its stages/.test((e as Error).message)) this.waitingApps.set(entry.name, entry);
      else throw e;
      return;
    }
    for (const app of [...this.waitingApps.values()]) {
      this.waitingApps.delete(app.name);
      await this.apply(app).catch(() => {});
    }
  }

  private async removeHere(name: string): Promise<void> {
    await this.controller.remove(name, { shared: true });
  }

  // --- Views ---

  /** Why this node is or is not ready in its cluster (what the readiness probe reports). */
  readiness(): { connected: boolean; synced: boolean; planEpoch: number; leaderEpoch: number } {
    return {
      connected: !this.nc.isClosed() && this.connected,
      synced: this.synced,
      planEpoch: this.plan?.epoch ?? 0,
      leaderEpoch: this.leadership?.leader?.epoch ?? 0,
    };
  }

  /** Connected to NATS, the cluster's functions deployed here, and routing by the current leader's plan. */
  get ready(): boolean {
    const r = this.readiness();
    return r.connected && r.synced && r.leaderEpoch > 0 && r.planEpoch === r.leaderEpoch;
  }

  /** What the dashboard shows of the cluster (no KV read: the history is `/admin/cluster`'s). */
  summary(): ClusterSummary {
    const used = new Map((this.plan?.nodes ?? []).map((n) => [n.name, n.gpusUsed]));
    const leader = this.leadership?.leader;
    return {
      node: this.opts.node,
      leader: leader?.node ?? null,
      epoch: leader?.epoch ?? 0,
      gpusPlanned: this.plan?.gpusUsed ?? 0,
      gpusTotal: this.plan?.gpusTotal ?? 0,
      nodes: (this.membership?.all() ?? []).map((p) => ({
        name: p.info.node,
        alive: p.alive,
        leader: p.info.node === leader?.node,
        gpus: p.info.devices.gpus,
        gpusPlanned: used.get(p.info.node) ?? 0,
        ready: p.info.ready.length,
      })).sort((a, b) => a.name.localeCompare(b.name)),
      routing: { ...this.counts },
    };
  }

  /** `GET /admin/cluster`: the nodes, the leader, the plan in force and the plans before it. */
  async describe() {
    const history: ClusterPlan[] = [];
    try {
      const it = await this.kv.history({ key: "plan" });
      for await (const e of it) {
        if (e.operation !== "PUT") continue;
        const p = ClusterPlan.safeParse(e.json());
        if (p.success) history.push(p.data);
      }
    } catch {
      // KV unavailable for now: the plan in force is still shown.
    }
    const now = performance.now();
    return {
      node: this.opts.node,
      leader: this.leadership.leader ?? null,
      nodes: this.membership.all().map((p) => ({
        ...p.info,
        alive: p.alive,
        lastHeartbeatMsAgo: Math.round(now - p.seenAt),
        leader: p.info.node === this.leadership.leader?.node,
      })),
      plan: this.plan ?? null,
      history: history.reverse().slice(0, PLAN_HISTORY).map((p) => ({
        epoch: p.epoch,
        seq: p.seq,
        leader: p.leader,
        at: p.at,
        gpusUsed: p.gpusUsed,
        gpusTotal: p.gpusTotal,
        nodes: p.nodes.filter((n) => n.gpusUsed > 0).map((n) => ({ name: n.name, gpusUsed: n.gpusUsed })),
        demand: p.demand,
      })),
      routing: this.counts,
    };
  }
}

/**
 * Whether the demand moved enough to plan again: a function started or stopped, rose past half the plan's
 * headroom (the plan still serves it until then), or fell by {@link DEMAND_DROP} (its GPUs may go).
 */
export function moved(planned: Record<string, number>, now: Record<string, number>): boolean {
  for (const fn of new Set([...Object.keys(planned), ...Object.keys(now)])) {
    const a = planned[fn] ?? 0, b = now[fn] ?? 0;
    if ((a === 0) !== (b === 0)) return true;
    if (b > a * (1 + CLUSTER_HEADROOM / 2) || b < a * (1 - DEMAND_DROP)) return true;
  }
  return false;
}
