/**
 * Prometheus metrics (prom-client), rendered at `GET /metrics`: Triton's inference metrics under their own
 * names and meanings (`nv_inference_*`, labelled by model and version, so Triton dashboards and alert rules
 * work), and gpulet's own (`gpulet_*`): requests by code, latencies, queues, batches, SLO attainment,
 * planned and measured rates, GPUs and gpu-lets, re-plans. Also feeds the dashboard's {@link LiveStats}.
 */
import client from "prom-client";
import { LiveStats } from "./live_stats.ts";
import type { AnswerEvent, BatchEvent, DispatchObserver } from "../admission/events.ts";

/** What the scrape-time gauges read from the controller. */
export interface MetricsSource {
  /** Live functions: name, version, rows queued. */
  functions(): { name: string; version: string; queueRows: number }[];
  /** gpu-let worker processes serving traffic. */
  workers(): number;
  /** The plan in force, where there is one: each gpu-let's GPU, part (%) and functions with planned rates. */
  planned?(): { gpu: number; part: number; functions: { name: string; rate: number }[] }[];
}

/** Triton's failure reasons, from our status codes. */
export function failureReason(status: number): "REJECTED" | "CANCELED" | "BACKEND" | "OTHER" {
  if (status === 429 || status === 504) return "REJECTED";
  if (status === 499) return "CANCELED";
  if (status === 503 || status === 500) return "BACKEND";
  return "OTHER";
}

const US_PER_MS = 1000;

/** Batch-size buckets: powers of two, as batches are usually planned. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly registry = new client.Registry();
  /** The last two minutes per function and gpu-let, for the dashboard. */
  readonly live = new LiveStats();

  // --- Triton-compatible (same names, types, labels and units as Triton's) ---
  private readonly nvSuccess = this.tritonCounter(
    "nv_inference_request_success",
    "Number of successful inference requests, all batch sizes",
  );
  private readonly nvFailure = new client.Counter({
    name: "nv_inference_request_failure",
    help: "Number of failed inference requests, all batch sizes",
    labelNames: ["model", "version", "reason"] as const,
    registers: [this.registry],
  });
  private readonly nvCount = this.tritonCounter("nv_inference_count", "Number of inferences performed (batch rows)");
  private readonly nvExecCount = this.tritonCounter(
    "nv_inference_exec_count",
    "Number of model executions performed (batches)",
  );
  private readonly nvRequestUs = this.tritonCounter(
    "nv_inference_request_duration_us",
    "Cumulative inference request duration in microseconds (successful requests, arrival to answer)",
  );
  private readonly nvQueueUs = this.tritonCounter(
    "nv_inference_queue_duration_us",
    "Cumulative inference queuing duration in microseconds (successful requests)",
  );
  private readonly nvComputeInferUs = this.tritonCounter(
    "nv_inference_compute_infer_duration_us",
    "Cumulative compute inference duration in microseconds (successful requests; each counts its batch)",
  );

  // --- gpulet's own ---
  private readonly requests = new client.Counter({
    name: "gpulet_requests_total",
    help: "Requests answered, by function and HTTP status code.",
    labelNames: ["function", "code"] as const,
    registers: [this.registry],
  });
  private readonly withinSlo = new client.Counter({
    name: "gpulet_requests_within_slo_total",
    help: "Requests answered 200 within their SLO, by function.",
    labelNames: ["function"] as const,
    registers: [this.registry],
  });
  private readonly duration = new client.Histogram({
    name: "gpulet_request_duration_seconds",
    help: "Time from admission to answer, by function.",
    labelNames: ["function"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly queueTime = new client.Histogram({
    name: "gpulet_queue_duration_seconds",
    help: "Time a request waited in its function's queue before its batch was sent.",
    labelNames: ["function"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly batchSize = new client.Histogram({
    name: "gpulet_batch_size",
    help: "Rows per executed batch, by function.",
    labelNames: ["function"] as const,
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });
  private readonly batchRequests = new client.Counter({
    name: "gpulet_batch_requests_total",
    help: "Requests that went through the model in executed batches.",
    labelNames: ["function"] as const,
    registers: [this.registry],
  });
  private readonly compute = new client.Histogram({
    name: "gpulet_batch_compute_seconds",
    help: "Model execution time per batch, inside the worker.",
    labelNames: ["function"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly retries = new client.Counter({
    name: "gpulet_retries_total",
    help: "Requests run again on another gpu-let after theirs died or hung, by function.",
    labelNames: ["function"] as const,
    registers: [this.registry],
  });
  /** Worker restarts after a crash, by function. */
  readonly workerRestarts = new client.Counter({
    name: "gpulet_worker_restarts_total",
    help: "gpu-let workers respawned after they died, by function.",
    labelNames: ["function"] as const,
    registers: [this.registry],
  });

  /** Re-plans of the autoscaler, by direction (up, down, new). */
  readonly replans = new client.Counter({
    name: "gpulet_replans_total",
    help: "Plan changes made by the autoscaler, by direction (up, down, new).",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });

  /** GPUs in use and gpu-lets running (the fleet), read at scrape time. */
  observeFleet(read: () => { gpus: number; gpulets: number }): void {
    new client.Gauge({
      name: "gpulet_gpus_in_use",
      help: "Devices (GPUs) with at least one running gpu-let.",
      registers: [this.registry],
      collect() {
        this.set(read().gpus);
      },
    });
    new client.Gauge({
      name: "gpulet_gpulets",
      help: "gpu-lets running (draining ones included).",
      registers: [this.registry],
      collect() {
        this.set(read().gpulets);
      },
    });
  }

  /**
   * This node's cluster, read at scrape time: live nodes, whether this node leads, the GPUs the cluster plan
   * uses (what a KEDA scaler can size the node pool by), and where the front door sent requests.
   */
  observeCluster(
    read: () => {
      nodesAlive: number;
      leader: boolean;
      gpusPlanned: number;
      gpusTotal: number;
      routing: Record<string, number>;
    },
  ): void {
    const gauge = (name: string, help: string, value: (r: ReturnType<typeof read>) => number) =>
      new client.Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value(read()));
        },
      });
    gauge("gpulet_cluster_nodes", "Nodes of the cluster alive (heard from in the last 1.5 s).", (r) => r.nodesAlive);
    gauge("gpulet_cluster_leader", "1 on the node that leads the cluster, 0 elsewhere.", (r) => (r.leader ? 1 : 0));
    gauge("gpulet_cluster_gpus_planned", "GPUs the cluster plan uses, over every node.", (r) => r.gpusPlanned);
    gauge("gpulet_cluster_gpus", "GPUs of the live nodes the cluster plans on.", (r) => r.gpusTotal);
    new client.Gauge({
      name: "gpulet_cluster_requests_routed",
      help: "Requests at this node's front door, by route: local, forwarded, retried (elsewhere), lost.",
      labelNames: ["route"] as const,
      registers: [this.registry],
      collect() {
        for (const [route, n] of Object.entries(read().routing)) this.set({ route }, n);
      },
    });
  }

  constructor(source: MetricsSource) {
    const live = this.live;
    new client.Gauge({
      name: "nv_inference_pending_request_count",
      help: "Instantaneous number of pending requests awaiting execution per-model (rows queued).",
      labelNames: ["model", "version"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const f of source.functions()) this.set({ model: f.name, version: f.version }, f.queueRows);
      },
    });
    new client.Gauge({
      name: "gpulet_queue_depth",
      help: "Rows waiting in each function's queue.",
      labelNames: ["function"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const f of source.functions()) this.set({ function: f.name }, f.queueRows);
      },
    });
    new client.Gauge({
      name: "gpulet_workers",
      help: "gpu-let worker processes serving traffic.",
      registers: [this.registry],
      collect() {
        this.set(source.workers());
      },
    });
    new client.Gauge({
      name: "gpulet_slo_attainment",
      help:
        "Share of each function's requests in the last 60 s answered 200 within the SLO (429/504/5xx count against).",
      labelNames: ["function"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const f of source.functions()) {
          const a = live.attainment(f.name);
          if (a !== null) this.set({ function: f.name }, a);
        }
      },
    });
    new client.Gauge({
      name: "gpulet_function_rate",
      help:
        "Requests per second by function: measured (last 10 s, refused ones included) and planned (the plan in force).",
      labelNames: ["function", "kind"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const planned = new Map<string, number>();
        for (const g of source.planned?.() ?? []) {
          for (const f of g.functions) planned.set(f.name, (planned.get(f.name) ?? 0) + f.rate);
        }
        for (const f of source.functions()) {
          this.set({ function: f.name, kind: "measured" }, live.rate(f.name));
          if (planned.has(f.name)) this.set({ function: f.name, kind: "planned" }, planned.get(f.name)!);
        }
      },
    });
    new client.Gauge({
      name: "gpulet_gpulet_part_percent",
      help: "The plan's gpu-lets: each one's share of its GPU (%), labelled by GPU, index on the GPU and functions.",
      labelNames: ["gpu", "gpulet", "functions"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const perGpu = new Map<number, number>();
        for (const g of source.planned?.() ?? []) {
          const index = perGpu.get(g.gpu) ?? 0;
          perGpu.set(g.gpu, index + 1);
          const functions = g.functions.map((f) => f.name).join(",");
          this.set({ gpu: String(g.gpu), gpulet: String(index), functions }, g.part);
        }
      },
    });
  }

  private tritonCounter(name: string, help: string) {
    return new client.Counter({ name, help, labelNames: ["model", "version"] as const, registers: [this.registry] });
  }

  /**
   * The observer of one function version's dispatcher. Label sets are bound once, on first use (a series
   * appears when it first counts): looking them up on every request costs the serving loop.
   */
  observerFor(name: string, version: string): DispatchObserver {
    const model = { model: name, version };
    const fn = { function: name };
    const batchSize = once(() => this.batchSize.labels(fn));
    const batchRequests = once(() => this.batchRequests.labels(fn));
    const compute = once(() => this.compute.labels(fn));
    const nvCount = once(() => this.nvCount.labels(model));
    const nvExecCount = once(() => this.nvExecCount.labels(model));
    const requests = new Map<number, client.Counter.Internal>();
    const queueTime = once(() => this.queueTime.labels(fn));
    const duration = once(() => this.duration.labels(fn));
    const withinSlo = once(() => this.withinSlo.labels(fn));
    const nvSuccess = once(() => this.nvSuccess.labels(model));
    const nvRequestUs = once(() => this.nvRequestUs.labels(model));
    const nvQueueUs = once(() => this.nvQueueUs.labels(model));
    const nvComputeInferUs = once(() => this.nvComputeInferUs.labels(model));
    return {
      batch: (e: BatchEvent) => {
        this.live.recordBatch(e);
        if (e.rows === 0) return; // every request refused in preprocessing: the model did not run
        batchSize().observe(e.rows);
        batchRequests().inc(e.requests);
        compute().observe(e.computeMs / 1000);
        nvCount().inc(e.rows);
        nvExecCount().inc();
      },
      answer: (e: AnswerEvent) => {
        let byCode = requests.get(e.status);
        if (!byCode) requests.set(e.status, byCode = this.requests.labels({ function: name, code: String(e.status) }));
        byCode.inc();
        this.live.recordAnswer(name, e);
        if (e.timing) queueTime().observe(e.timing.queueMs / 1000);
        if (e.status !== 200) {
          this.nvFailure.inc({ ...model, reason: failureReason(e.status) });
          return;
        }
        duration().observe(e.totalMs / 1000);
        if (e.withinSlo) withinSlo().inc();
        nvSuccess().inc();
        nvRequestUs().inc(Math.round(e.totalMs * US_PER_MS));
        if (e.timing) {
          nvQueueUs().inc(Math.round(e.timing.queueMs * US_PER_MS));
          nvComputeInferUs().inc(Math.round(e.timing.computeMs * US_PER_MS));
        }
      },
      retried: (requests: number) => this.retries.inc(fn, requests),
    };
  }

  /** Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** `make()`, called once, on first use. */
function once<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => value ??= make();
}
