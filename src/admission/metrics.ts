/**
 * Prometheus metrics of the data plane (prom-client): requests, latencies, queue depth, executed batch
 * sizes, per function. `GET /metrics` renders them.
 */
import client from "prom-client";
import type { DispatchObserver } from "./dispatcher.ts";

/** Batch-size buckets: powers of two, as batches are usually planned. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics implements DispatchObserver {
  readonly registry = new client.Registry();
  private readonly requests = new client.Counter({
    name: "gpulet_requests_total",
    help: "Requests answered, by function and HTTP status code.",
    labelNames: ["function", "code"] as const,
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

  /** Autoscaled mode: GPUs in use and gpu-lets running, read at scrape time. */
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

  /** `depthOf()` is read at scrape time: rows queued per function, and live workers. */
  constructor(depthOf: () => Map<string, number>, workers: () => number) {
    new client.Gauge({
      name: "gpulet_queue_depth",
      help: "Rows waiting in each function's queue.",
      labelNames: ["function"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [fn, d] of depthOf()) this.set({ function: fn }, d);
      },
    });
    new client.Gauge({
      name: "gpulet_workers",
      help: "gpu-let worker processes serving traffic.",
      registers: [this.registry],
      collect() {
        this.set(workers());
      },
    });
  }

  batch(fn: string, rows: number, requests: number, computeMs: number): void {
    this.batchSize.observe({ function: fn }, rows);
    this.batchRequests.inc({ function: fn }, requests);
    this.compute.observe({ function: fn }, computeMs / 1000);
  }

  answer(fn: string, status: number, totalMs: number, queueMs?: number): void {
    this.requests.inc({ function: fn, code: String(status) });
    if (status === 200) this.duration.observe({ function: fn }, totalMs / 1000);
    if (queueMs !== undefined) this.queueTime.observe({ function: fn }, queueMs / 1000);
  }

  retried(fn: string, requests: number): void {
    this.retries.inc({ function: fn }, requests);
  }

  /** Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
