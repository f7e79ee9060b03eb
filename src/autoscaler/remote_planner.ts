/**
 * Re-plans in a worker, so planning (tens to hundreds of milliseconds) never blocks the loop that serves
 * HTTP and dispatches batches. One worker per controller, started on the first re-plan; a worker that fails
 * is replaced on the next one, and a re-plan it could not answer is made on this thread instead (late
 * beats never).
 */
import type { Plan } from "../planner/plan.ts";
import { type PlanContext, planDemand, type PlanRequest } from "./plan_demand.ts";
import type { PlanWorkerReply, PlanWorkerRequest } from "./plan_worker.ts";

export class RemotePlanner {
  private worker?: Worker;
  private closed = false;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (p: Plan) => void; reject: (e: Error) => void }>();

  /** @param log where a worker failure is reported */
  constructor(private readonly context: PlanContext, private readonly log: (line: string) => void = () => {}) {}

  /** Plans `request` in the worker (on this thread if the worker fails). */
  async plan(request: PlanRequest): Promise<Plan> {
    if (!this.closed) {
      try {
        return await this.inWorker(request);
      } catch (e) {
        if (!this.closed) this.log(`planner worker failed (${(e as Error).message}); planning on the serving thread`);
      }
    }
    return planDemand(this.context, request);
  }

  /** Stops the worker; re-plans still waiting are made on this thread by `plan`. */
  close(): void {
    this.closed = true;
    this.stop(new Error("the planner was closed"));
  }

  private inWorker(request: PlanRequest): Promise<Plan> {
    const worker = this.worker ?? this.start();
    const id = ++this.seq;
    return new Promise<Plan>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ kind: "plan", id, request } satisfies PlanWorkerRequest);
    });
  }

  private start(): Worker {
    const worker = new Worker(new URL("./plan_worker.ts", import.meta.url), { type: "module" });
    const { latency, interference, ...rest } = this.context;
    const init: PlanWorkerRequest = {
      kind: "init",
      context: rest,
      latency: { source: latency.source, rows: latency.toRows() },
      interference: interference?.params,
    };
    worker.postMessage(init);
    worker.onmessage = (e: MessageEvent<PlanWorkerReply>) => {
      const r = e.data;
      const waiting = this.pending.get(r.id);
      if (!waiting) return;
      this.pending.delete(r.id);
      if ("error" in r) waiting.reject(new Error(r.error));
      else waiting.resolve(r.plan);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.stop(new Error(e.message));
    };
    this.worker = worker;
    return worker;
  }

  private stop(reason: Error): void {
    this.worker?.terminate();
    this.worker = undefined;
    for (const w of this.pending.values()) w.reject(reason);
    this.pending.clear();
  }
}
