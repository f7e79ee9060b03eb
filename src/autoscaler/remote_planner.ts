/**
 * Re-plans in a worker, so planning (tens to hundreds of milliseconds) never blocks the loop that serves
 * HTTP and dispatches batches. One worker per controller, started on the first re-plan; a worker that fails
 * is replaced on the next one, and a re-plan it could not answer is made on this thread instead (late
 * beats never). A re-plan is bounded in time: a worker that takes longer is stopped and that re-plan fails
 * (the plan in force stays; the next tick plans afresh), never moved onto the serving thread.
 */
import type { Plan } from "../planner/plan.ts";
import { type PlanContext, planDemand, type PlanRequest } from "./plan_demand.ts";
import type { PlanWorkerReply, PlanWorkerRequest } from "./plan_worker.ts";
import type { AppGraph } from "../planner/app_split.ts";

/** Longest a re-plan may take in the worker by default (ms); first plans of a big profile take ~1 s here. */
const DEFAULT_PLAN_TIMEOUT_MS = 30_000;

/** A re-plan the worker did not answer in time. */
export class PlanTimeoutError extends Error {}

export class RemotePlanner {
  private worker?: Worker;
  private closed = false;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: PlanWorkerReply) => void; reject: (e: Error) => void }>();

  /**
   * @param log where a worker failure is reported
   * @param timeoutMs longest a re-plan may take in the worker
   */
  constructor(
    private readonly context: PlanContext,
    private readonly log: (line: string) => void = () => {},
    private readonly timeoutMs = DEFAULT_PLAN_TIMEOUT_MS,
  ) {}

  /**
   * Plans `request` in the worker (on this thread if the worker fails); rejects with a
   * {@link PlanTimeoutError} if the worker does not answer within the time bound.
   */
  async plan(request: PlanRequest): Promise<Plan> {
    if (!this.closed) {
      try {
        return await this.inWorker(request);
      } catch (e) {
        // As slow on this thread: that would stall every request for as long.
        if (e instanceof PlanTimeoutError) throw e;
        if (!this.closed) this.log(`planner worker failed (${(e as Error).message}); planning on the serving thread`);
      }
    }
    return planDemand(this.context, request);
  }

  /**
   * Splits `app`'s SLO over its levels for `rate` app requests/s, in the worker only (a split plans several
   * candidates: seconds on big problems); rejects if the worker fails or takes too long.
   */
  async split(app: AppGraph, rate: number): Promise<number[]> {
    if (this.closed) throw new Error("the planner was closed");
    const r = await this.ask((id) => ({ kind: "split", id, app, rate }));
    if (!("budgetsMs" in r)) throw new Error("the planner worker answered a split with a plan");
    return r.budgetsMs;
  }

  /** Stops the worker; re-plans still waiting are made on this thread by `plan`. */
  close(): void {
    this.closed = true;
    this.stop(new Error("the planner was closed"));
  }

  private async inWorker(request: PlanRequest): Promise<Plan> {
    const r = await this.ask((id) => ({ kind: "plan", id, request }));
    if (!("plan" in r)) throw new Error("the planner worker answered a plan with a split");
    return r.plan;
  }

  /** Sends one request to the worker (started if need be) and waits for its answer, within the time bound. */
  private ask(message: (id: number) => PlanWorkerRequest): Promise<PlanWorkerReply> {
    const worker = this.worker ?? this.start();
    const id = ++this.seq;
    return new Promise<PlanWorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.log(`planner worker did not answer in ${this.timeoutMs} ms; stopped`);
        this.stop(new PlanTimeoutError(`the re-plan took longer than ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      worker.postMessage(message(id));
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
      else waiting.resolve(r);
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
